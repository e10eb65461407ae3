"""PGD equals torchattacks' PGD; the adaptive attack on the map beats PGD on the prediction at the map."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DModel

from harness.attacks import adaptive_attack, pgd_linf
from harness.attacks.adaptive import DIFFERENTIABLE_METHODS
from harness.explainers.registry import explain, get_explainer
from harness.models.denoiser import Denoiser
from harness.models.mini import MINI_UNET_CONFIG
from harness.smoothing.dds import smooth
from harness.smoothing.timesteps import linear_alphas_cumprod

RADIUS = 8 / 255


@pytest.fixture(scope="module")
def images():
    from harness.data.embedded import EmbeddedShapes, stack

    return stack(EmbeddedShapes("test"), range(4))[0]


def test_pgd_equals_torchattacks(random_mini_vit, images):
    torchattacks = pytest.importorskip("torchattacks")
    label = random_mini_vit(images).argmax(1)
    ours = pgd_linf(random_mini_vit, images, RADIUS, seed=7)
    torch.manual_seed(7)  # torchattacks draws its random start from the global RNG
    atk = torchattacks.PGD(random_mini_vit, eps=RADIUS, alpha=RADIUS / 5, steps=10, random_start=True)
    theirs = atk(images, label)
    assert torch.equal(ours, theirs)
    assert not torch.equal(ours, pgd_linf(random_mini_vit, images, RADIUS, seed=8))


@pytest.mark.parametrize("method", sorted(DIFFERENTIABLE_METHODS))
def test_differentiable_maps_equal_the_registered_ones(method, random_mini_vit, images):
    from harness.attacks.adaptive import minmax
    from harness.explainers.registry import get_spec

    spec = get_spec(method)
    with torch.no_grad():  # the differentiable forms explain each image's predicted class
        predicted = random_mini_vit(images).argmax(dim=1)
    ref = spec.fn(random_mini_vit, images, predicted, **spec.defaults)
    torch.testing.assert_close(minmax(DIFFERENTIABLE_METHODS[method](random_mini_vit, images)), minmax(ref))


def _map_change(explainer, model, clean, adv) -> torch.Tensor:
    return (explainer(model, adv) - explainer(model, clean)).pow(2).mean(dim=(1, 2))


# Class-agnostic methods: a class-specific map also changes when PGD flips the class, which the map
# attack (each sample explains its own class, argmax has no gradient) does not aim for.
@pytest.mark.parametrize("method", ["raw_attention", "rollout"])
def test_adaptive_attack_moves_the_map_more_than_pgd(method, random_mini_vit, images):
    """Random-weight mini ViT, radius 8/255, 10 steps: per image, the map attack moves the map more.

    (Observed margins are 2x to 10x per image for both methods, so this is robust to the seed.)
    """
    adv = adaptive_attack(random_mini_vit, images, RADIUS, method=method, seed=1)
    pgd = pgd_linf(random_mini_vit, images, RADIUS, seed=1)
    explainer = get_explainer(method)
    moved_adaptive = _map_change(explainer, random_mini_vit, images, adv)
    assert (moved_adaptive > _map_change(explainer, random_mini_vit, images, pgd)).all()
    assert (adv - images).abs().max() <= RADIUS + 1e-6 and adv.min() >= 0 and adv.max() <= 1


@pytest.mark.parametrize(("variant", "sigma"), [("noise_only", 4 / 255), ("carlini", 0.12)])
def test_adaptive_attack_through_dds_with_eot(variant, sigma, random_mini_vit, images):
    """Through DDS (random mini UNet for carlini), the smoothed map moves more on average than under PGD."""
    torch.manual_seed(0)
    den = Denoiser(UNet2DModel(**MINI_UNET_CONFIG), linear_alphas_cumprod())
    adv = adaptive_attack(
        random_mini_vit,
        images,
        RADIUS,
        method="rollout",
        denoiser=den,
        variant=variant,
        sigma=sigma,
        eot_samples=2,
        steps=5,
        seed=1,
    )
    pgd = pgd_linf(random_mini_vit, images, RADIUS, seed=1)
    smoothed = smooth(get_explainer("rollout"), den, variant, sigma=sigma, samples=4, seed=5)
    assert (
        _map_change(smoothed, random_mini_vit, images, adv).mean()
        > _map_change(smoothed, random_mini_vit, images, pgd).mean()
    )
    assert (adv - images).abs().max() <= RADIUS + 1e-6 and adv.min() >= 0 and adv.max() <= 1


def test_topk_loss_lowers_the_clean_topk_share(random_mini_vit, images):
    adv = adaptive_attack(random_mini_vit, images, RADIUS, method="raw_attention", loss="topk", seed=2)
    clean = explain("raw_attention", random_mini_vit, images)
    attacked = explain("raw_attention", random_mini_vit, adv)
    k = int(0.1 * 64 * 64)
    top = clean.flatten(1).topk(k, dim=1).indices

    def share(m):
        return m.flatten(1).gather(1, top).sum(1) / m.flatten(1).sum(1)

    assert (share(attacked) < share(clean)).all()


def test_bad_input_is_named(random_mini_vit, images):
    with pytest.raises(ValueError, match="pixel units"):
        adaptive_attack(random_mini_vit, images, 8.0)
    with pytest.raises(ValueError, match="differentiable form"):
        adaptive_attack(random_mini_vit, images, RADIUS, method="not_a_method")
    with pytest.raises(ValueError, match="loss"):
        adaptive_attack(random_mini_vit, images, RADIUS, loss="kl")
    with pytest.raises(ValueError, match="needs a denoiser"):
        adaptive_attack(random_mini_vit, images, RADIUS, variant="carlini")
    with pytest.raises(ValueError, match="pixel units"):
        adaptive_attack(random_mini_vit, images, RADIUS, variant="noise_only", sigma=2.0)
    with pytest.raises(ValueError, match="pixel units"):
        pgd_linf(random_mini_vit, images, -0.1)
    assert torch.equal(adaptive_attack(random_mini_vit, images, 0.0), images)
