"""Each DDS variant as its paper's code assembles it: denoise_only, Re's fusion and sample counts, one
attack per trial, the denoiser's dtype, and which explainers are class-specific with which options."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DModel

from harness.explainers.registry import explain, explain_raw, get_explainer, get_spec, normalise_maps
from harness.models.denoiser import Denoiser, load_denoiser, parse_dtype
from harness.models.mini import MINI_DENOISER_DIR
from harness.runner.config import DDSSpec, ExperimentConfig
from harness.smoothing.dds import gaussian_like, get_variant, re_samples, smooth
from harness.smoothing.fusion import FUSIONS, uses_raw_maps
from harness.smoothing.timesteps import linear_alphas_cumprod

SIGMA = 2 / 255  # delta 4/255 in [-1,1] space: 8 ancestral steps


@pytest.fixture(scope="module")
def tiny_denoiser() -> Denoiser:
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


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(1))


def test_denoise_only_is_fvit_without_the_noise_added_after_denoising(tiny_denoiser, images):
    """FViT's 'only denoise' ablation keeps the denoiser's own delta noise and drops only the second one."""
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    g = gen()
    denoised = tiny_denoiser.fvit_denoise(images, SIGMA, g, clip=False)
    after = gaussian_like(images, g)
    fvit = get_variant("fvit").purify(tiny_denoiser, images, SIGMA, gen())
    only = get_variant("denoise_only").purify(tiny_denoiser, images, SIGMA, gen())
    torch.testing.assert_close(fvit, (denoised + SIGMA * after).clamp(0, 1), rtol=0, atol=1e-6)
    torch.testing.assert_close(only, denoised.clamp(0, 1), rtol=0, atol=1e-6)
    without_delta = tiny_denoiser.fvit_denoise(images, SIGMA, gen(), add_noise=False)
    assert (only - without_delta).abs().max() > 1e-3  # the delta noise inside the chain is there


def test_re_fuses_the_mean_of_raw_maps_then_normalises_once(mini_vit, mini_denoiser, embedded_batch):
    images = embedded_batch[0][:2]
    explainer = get_explainer("transformer_attribution")
    dds = smooth(explainer, mini_denoiser, "re", sigma=SIGMA, samples=3, seed=2)
    assert dds.fusion_name == "raw_mean" and uses_raw_maps("raw_mean") and not uses_raw_maps("mean")
    purified = dds.purify(images)
    own = mini_vit(purified).argmax(1)
    raw = explain_raw("transformer_attribution", mini_vit, purified, own).view(2, 3, 64, 64)
    expected = normalise_maps(raw.mean(dim=1))
    torch.testing.assert_close(dds.explain_purified(mini_vit, purified, None), expected, rtol=0, atol=1e-6)
    # the former behaviour (normalise each map, then average) stays available as fusion "mean"
    per_map = smooth(explainer, mini_denoiser, "re", sigma=SIGMA, samples=3, seed=2, fusion="mean")
    by_hand = normalise_maps(explain("transformer_attribution", mini_vit, purified, own).view(2, 3, 64, 64).mean(1))
    got = per_map.explain_purified(mini_vit, purified, None)
    torch.testing.assert_close(got, by_hand, rtol=0, atol=1e-6)
    assert (got - expected).abs().max() > 1e-4  # the two fusions differ on these maps


def test_raw_fusion_needs_an_explainer_with_raw_maps(mini_denoiser):
    def bare(model, images, target=None):
        return torch.zeros(images.shape[0], 64, 64)

    with pytest.raises(ValueError, match="raw"):
        smooth(bare, mini_denoiser, "re")
    assert smooth(bare, mini_denoiser, "re", fusion="mean").fusion_name == "mean"
    assert set(FUSIONS) >= {"mean", "raw_mean", "drop_low_max", "max"}


def test_re_sample_counts_follow_each_task():
    from harness.runner.experiment import _for_unit, _samples_task

    assert (re_samples("segmentation", False), re_samples("segmentation", True)) == (10, 2)
    assert (re_samples("perturbation", False), re_samples("perturbation", True)) == (2, 2)
    dds = smooth(get_explainer("rollout"), None, "noise_only")
    assert _for_unit(dds, 0, attacked=False, task="perturbation").n_samples == dds.n_samples  # not re
    re = smooth(get_explainer("rollout"), load_denoiser(MINI_DENOISER_DIR), "re")
    assert _for_unit(re, 0, attacked=False, task="perturbation").n_samples == 2
    assert _for_unit(re, 0, attacked=False, task="segmentation").n_samples == 10
    assert _samples_task(ExperimentConfig(tasks=("perturbation",))) == "perturbation"
    assert _samples_task(ExperimentConfig(tasks=("segmentation", "perturbation"))) == "segmentation"
    with pytest.raises(ValueError, match="task"):
        re_samples("classification", False)


def test_attack_per_trial_attacks_each_trial_afresh(tmp_path, monkeypatch):
    """FViT's notebook: every trial attacks the clean image again; the default shares one attack."""
    import harness.runner.experiment as experiment
    from harness.runner.experiment import load_rows, run_experiment

    seeds: list[int] = []
    real = experiment.pgd_linf

    def spy(model, images, radius, **kw):
        seeds.append(kw["seed"])
        return real(model, images, radius, **kw)

    monkeypatch.setattr(experiment, "pgd_linf", spy)
    base = ExperimentConfig(
        name="trials",
        methods=("raw_attention",),
        radii_255=(0, 8),
        tasks=("segmentation",),
        limit=2,
        batch_size=2,
        dds=(DDSSpec("carlini", sigma=0.1, samples=3),),
    )
    run_experiment(base, tmp_path / "shared", progress=False)
    shared_seeds, seeds[:] = list(seeds), []
    per_trial = base.replace(dds=(DDSSpec("carlini", sigma=0.1, samples=3, attack_per_trial=True),))
    run_experiment(per_trial, tmp_path / "trials", progress=False)
    assert len(shared_seeds) == 2 and len(seeds) == 2 + 2  # radii 0 and 8, + trials 1 and 2 at radius 8
    assert seeds[:2] == shared_seeds and len(set(seeds)) == 4
    assert per_trial.config_hash() != base.config_hash()
    a, b = load_rows(tmp_path / "shared", base), load_rows(tmp_path / "trials", per_trial)
    key = ["item_id", "method", "dds", "radius_255"]
    a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    same = (a["dds"] == "none") | (a["radius_255"] == 0)
    cols = ["correct", "inter_fg", "ap"]
    assert (a.loc[same, cols].to_numpy() == b.loc[same, cols].to_numpy()).all()
    assert not (a.loc[~same, "ap"].to_numpy() == b.loc[~same, "ap"].to_numpy()).all()


def test_denoiser_dtype_plumbing_on_cpu(mini_denoiser, embedded_batch):
    images = embedded_batch[0][:2]
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    ref = mini_denoiser.carlini_denoise(images, 0.1, gen())
    half = load_denoiser(MINI_DENOISER_DIR).set_dtype("bfloat16")
    assert half.dtype == torch.bfloat16 and all(p.dtype == torch.bfloat16 for p in half.unet.parameters())
    out = half.carlini_denoise(images, 0.1, gen())
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert 0 < (out - ref).abs().mean() < 0.02  # computed in bfloat16 (8-bit mantissa), not silently fp32
    assert parse_dtype("float16") == torch.float16
    with pytest.raises(ValueError, match="dtype"):
        ExperimentConfig(denoiser_dtype="float8")
    from harness.runner.experiment import load_denoiser_for

    assert load_denoiser_for(ExperimentConfig(denoiser_dtype="bfloat16")).dtype == torch.bfloat16
    assert ExperimentConfig().config_hash() == ExperimentConfig(denoiser_dtype="float32").config_hash()
    assert ExperimentConfig().config_hash() != ExperimentConfig(denoiser_dtype="float16").config_hash()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the fp16 UNet is checked on a GPU")
@pytest.mark.parametrize("variant", ["carlini", "fvit"])
def test_fp16_maps_stay_close_to_fp32_on_cuda(mini_vit, embedded_batch, variant):
    """Tolerance: mean absolute difference of the [0,1] maps <= 0.02 (same noise draws, fp16 UNet)."""
    model = mini_vit.cuda()
    images = embedded_batch[0][:4].cuda()
    maps = {}
    for dtype in ("float32", "float16"):
        den = load_denoiser(MINI_DENOISER_DIR).cuda().set_dtype(dtype)
        sigma = 0.12 if variant == "carlini" else None
        dds = smooth(get_explainer("transformer_attribution"), den, variant, sigma=sigma, seed=0)
        maps[dtype] = dds(model, images, torch.zeros(4, dtype=torch.long, device="cuda"))
    assert (maps["float16"] - maps["float32"]).abs().mean() <= 0.02


def test_denoiser_loads_without_the_accelerate_warning(capfd):
    load_denoiser(MINI_DENOISER_DIR)
    captured = capfd.readouterr()
    assert "accelerate" not in captured.err + captured.out


def test_class_specific_flag_is_true_to_the_options(mini_vit, embedded_batch):
    spec = get_spec("attribution_rollout")
    assert not spec.is_class_specific() and spec.is_class_specific(top_class=False)
    assert get_explainer("attribution_rollout", top_class=False).class_specific
    images = embedded_batch[0][:2]
    for top_class in (True, False):
        a = explain("attribution_rollout", mini_vit, images, 1, top_class=top_class)
        b = explain("attribution_rollout", mini_vit, images, 6, top_class=top_class)
        assert bool((a - b).abs().max() > 1e-3) == spec.is_class_specific(top_class=top_class)
