"""DDS variants around registered explainers on the embedded world; UNet call counts; bad input."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DModel

from harness.explainers.registry import get_explainer, names
from harness.models.denoiser import Denoiser, load_denoiser
from harness.models.mini import MINI_DENOISER_DIR, MINI_UNET_CONFIG
from harness.smoothing.dds import (
    FVIT_DEFAULT_SIGMA,
    RE_SAMPLES_ATTACKED,
    RE_SAMPLES_CLEAN,
    VARIANTS,
    get_variant,
    smooth,
)
from harness.smoothing.timesteps import fvit_steps, model_space_std

ALL_VARIANTS = ("carlini", "fvit", "re", "noise_only", "denoise_only")
# Pixel sigma 2/255 is delta = 4/255 in [-1,1] space: 8 sampling steps keep the fvit family fast.
FAST_SIGMA = {"carlini": 0.12, "fvit": 2 / 255, "re": 2 / 255, "noise_only": 2 / 255, "denoise_only": 2 / 255}


@pytest.fixture(scope="module")
def denoiser() -> Denoiser:
    """The shipped mini denoiser if present, else the mini architecture with seeded random weights."""
    if (MINI_DENOISER_DIR / "config.json").is_file():
        return load_denoiser(MINI_DENOISER_DIR)
    torch.manual_seed(0)
    from harness.smoothing.timesteps import linear_alphas_cumprod

    return Denoiser(UNet2DModel(**MINI_UNET_CONFIG), linear_alphas_cumprod(), name="random-mini-unet")


@pytest.fixture(scope="module")
def tiny_denoiser() -> Denoiser:
    """A far smaller random UNet (16x16 sample size) for the call-count tests: counts, not quality."""
    from harness.smoothing.timesteps import linear_alphas_cumprod

    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=16,
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    )
    return Denoiser(unet, linear_alphas_cumprod(), name="tiny-unet")


@pytest.fixture
def calls(tiny_denoiser):
    """Batch sizes of every forward call of `tiny_denoiser`'s UNet while the test runs."""
    seen: list[int] = []
    handle = tiny_denoiser.unet.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[0]))
    yield seen
    handle.remove()


@pytest.fixture(scope="module")
def images():
    from harness.data.embedded import EmbeddedShapes, stack

    return stack(EmbeddedShapes("test"), range(2))[0]


def test_all_variants_registered():
    assert set(ALL_VARIANTS) <= set(VARIANTS)


@pytest.mark.parametrize("variant", ALL_VARIANTS)
@pytest.mark.parametrize("method", ["raw_attention", "rollout"])
def test_variant_runs_around_attention_methods(variant, method, random_mini_vit, tiny_denoiser, images):
    """Each variant around each attention method: normalised maps, seeded, labelled. On the 16 px random UNet
    (the fvit family's 8 sampling steps at a fraction of the mini UNet's cost): the maps' range and the
    seeding do not depend on the denoiser's quality."""
    smoothed = smooth(get_explainer(method), tiny_denoiser, variant, sigma=FAST_SIGMA[variant], samples=2, seed=3)
    maps = smoothed(random_mini_vit, images[:1])
    assert maps.shape == (1, 64, 64) and maps.dtype == torch.float32
    assert maps.min() == 0 and maps.max() == 1
    torch.testing.assert_close(smoothed(random_mini_vit, images[:1]), maps)  # seeded: deterministic
    assert smoothed.label == f"{method}+dds[{variant}]"


@pytest.mark.parametrize("method", names())
@pytest.mark.parametrize("variant", ["carlini", "noise_only"])
def test_every_registered_explainer_can_be_smoothed(method, variant, random_mini_vit, denoiser, images):
    maps = smooth(get_explainer(method), denoiser, variant, samples=2)(random_mini_vit, images)
    assert maps.shape == (2, 64, 64) and torch.isfinite(maps).all()


def test_carlini_one_unet_call_per_sample_in_one_batch(random_mini_vit, tiny_denoiser, images, calls):
    smoothed = smooth(get_explainer("raw_attention"), tiny_denoiser, "carlini", samples=3)
    smoothed(random_mini_vit, images)
    assert calls == [6] and smoothed.unet_calls_per_sample == 1
    calls.clear()
    one_by_one = smooth(get_explainer("raw_attention"), tiny_denoiser, "carlini", samples=3, max_batch=1)
    one_by_one(random_mini_vit, images)
    assert calls == [1] * 6


def test_fvit_calls_the_unet_45_times_at_delta_8_over_255(random_mini_vit, tiny_denoiser, images, calls):
    """delta = 8/255 in [-1,1] space (pixel sigma 4/255, the default): 45 UNet calls per sample."""
    smoothed = smooth(get_explainer("rollout"), tiny_denoiser, "fvit", samples=2, max_batch=1)
    assert smoothed.sigma == FVIT_DEFAULT_SIGMA and fvit_steps(model_space_std(smoothed.sigma)) == 45
    smoothed(random_mini_vit, images[:1])
    assert smoothed.unet_calls_per_sample == 45 and calls == [1] * 90


@pytest.mark.parametrize("variant", ["fvit", "re", "denoise_only"])
def test_fvit_family_calls_the_unet_exactly_the_rules_steps(variant, random_mini_vit, tiny_denoiser, images, calls):
    sigma = 3 / 255
    steps = fvit_steps(model_space_std(sigma))
    assert steps == 24
    smoothed = smooth(get_explainer("rollout"), tiny_denoiser, variant, sigma=sigma, samples=2, max_batch=1)
    smoothed(random_mini_vit, images[:1])
    assert smoothed.unet_calls_per_sample == steps
    assert calls == [1] * (2 * steps)  # one sample per batch: `steps` calls each


def test_fvit_samples_share_batches(random_mini_vit, tiny_denoiser, images, calls):
    smooth(get_explainer("rollout"), tiny_denoiser, "fvit")(random_mini_vit, images)
    assert calls == [4] * 45  # 2 images x trial_num 2 go through every step together


def test_noise_only_needs_no_denoiser(random_mini_vit, images):
    smoothed = smooth(get_explainer("rollout"), None, "noise_only")
    assert smoothed(random_mini_vit, images).shape == (2, 64, 64) and smoothed.unet_calls_per_sample == 0


def test_defaults_follow_the_protocol(denoiser):
    fvit, re = get_variant("fvit"), get_variant("re")
    assert (fvit.default_samples, fvit.default_fusion) == (2, "drop_low_max")
    assert (re.default_samples, re.default_fusion) == (RE_SAMPLES_CLEAN, "raw_mean") == (10, "raw_mean")
    assert RE_SAMPLES_ATTACKED == 2
    assert model_space_std(fvit.default_sigma) == pytest.approx(8 / 255)  # FViT/Re delta = 8/255 normalised
    assert smooth(get_explainer("rollout"), denoiser, "re").sigma == pytest.approx(4 / 255)
    assert smooth(get_explainer("rollout"), denoiser, "carlini").sigma == 0.12


def test_noise_is_in_pixel_units():
    x = torch.full((4, 3, 64, 64), 0.5)
    out = get_variant("noise_only").purify(None, x, 0.05, torch.Generator().manual_seed(0))
    assert (out - x).std().item() == pytest.approx(0.05, rel=0.02)


@pytest.mark.parametrize("sigma", [0.0, -0.1, 1.5, float("nan")])
def test_sigma_out_of_range_is_rejected(sigma, denoiser):
    with pytest.raises(ValueError, match="pixel units"):
        smooth(get_explainer("rollout"), denoiser, "carlini", sigma=sigma)


def test_fvit_sigma_beyond_its_chain_is_rejected_at_construction(denoiser):
    with pytest.raises(ValueError, match="respaced chain"):
        smooth(get_explainer("rollout"), denoiser, "fvit", sigma=32 / 255)


def test_bad_options_are_named(denoiser):
    with pytest.raises(ValueError, match="needs a denoiser"):
        smooth(get_explainer("rollout"), None, "fvit")
    with pytest.raises(KeyError, match="unknown DDS variant"):
        smooth(get_explainer("rollout"), denoiser, "nope")
    with pytest.raises(KeyError, match="unknown fusion"):
        smooth(get_explainer("rollout"), denoiser, "fvit", fusion="median")
    with pytest.raises(ValueError, match="samples"):
        smooth(get_explainer("rollout"), denoiser, "re", samples=0)


def test_carlini_noise_is_drawn_at_the_unet_resolution(tiny_denoiser, monkeypatch):
    """Classifier images (24 px here, 224 for ViT-B) are resized to the UNet size (16) before the noise:
    the UNet sees i.i.d. noise of std exactly 2 sigma in [-1,1] space, as t*(sigma) assumes."""
    seen = []

    def fake_eps(x_t, t):
        seen.append((x_t, int(t)))
        return torch.zeros_like(x_t)

    monkeypatch.setattr(tiny_denoiser, "predict_eps", fake_eps)
    sigma = 0.25
    images = torch.full((64, 3, 24, 24), 0.5)  # x' = 0 in model space: x_t is pure scaled noise
    out = get_variant("carlini").purify(tiny_denoiser, images, sigma, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    ((x_t, t),) = seen
    assert x_t.shape[-2:] == (16, 16)
    abar = float(tiny_denoiser.alphas_cumprod[t])
    noise_std = (x_t / abar**0.5).std().item()
    assert noise_std == pytest.approx(2 * sigma, rel=0.02)


def test_without_a_target_each_sample_explains_its_own_prediction(denoiser):
    """The papers' code explains every denoised image with index=None: its own predicted class."""
    from harness.models.mini import load_mini_vit

    model = load_mini_vit()
    images = torch.stack([torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(i)) for i in range(3)])
    dds = smooth(get_explainer("transformer_attribution"), denoiser, "carlini", sigma=0.2, samples=4, seed=3)
    purified = dds.purify(images)
    own = model(purified).argmax(1)
    expected = dds.explain_purified(model, purified, None)
    by_hand = torch.stack(
        [
            get_explainer("transformer_attribution")(model, purified[i : i + 1], own[i : i + 1])[0]
            for i in range(purified.shape[0])
        ]
    ).view(3, 4, 64, 64)
    from harness.explainers.registry import normalise_maps
    from harness.smoothing.fusion import get_fusion

    torch.testing.assert_close(expected, normalise_maps(get_fusion(dds.fusion_name)(by_hand)), rtol=0, atol=1e-5)
    torch.testing.assert_close(dds(model, images), expected)
    as_input = smooth(
        get_explainer("transformer_attribution"),
        denoiser,
        "carlini",
        sigma=0.2,
        samples=4,
        seed=3,
        sample_target="input",
    )
    torch.testing.assert_close(as_input(model, images), dds(model, images, model(images).argmax(1)))
    with pytest.raises(ValueError, match="sample_target"):
        smooth(get_explainer("rollout"), denoiser, "carlini", sample_target="label")
