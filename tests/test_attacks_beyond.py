"""Attacks on the explanation for every registered method: exact forms or named surrogates, every DDS
variant with EOT (BPDA through the multi-step chains), and the targeted manipulation attack."""

import warnings

import pytest
import torch

from harness.attacks.adaptive import adaptive_attack, default_gradient, minmax, purify_for_attack, smoothed_patch_map
from harness.attacks.differentiable import DIFFERENTIABLE_METHODS, SURROGATES, attack_form
from harness.explainers.builtin import BUILTIN_METHODS
from harness.smoothing.dds import VARIANTS, get_variant, purifier_names

RADIUS = 8 / 255


@pytest.fixture(scope="module")
def images():
    from harness.data.embedded import EmbeddedShapes, stack

    return stack(EmbeddedShapes("test"), range(2))[0]


@pytest.fixture(scope="module")
def random_denoiser():
    """A small random UNet (tests/tiny_models.py): these tests check the attack's plumbing through each
    variant's purification (bounds, EOT, BPDA), not the denoiser; fvit's default sigma is 45 UNet calls per
    sample, at a fraction of the embedded UNet's cost."""
    from tiny_models import tiny_denoiser

    return tiny_denoiser()


def test_every_builtin_method_has_an_exact_form_or_a_named_surrogate():
    for method in BUILTIN_METHODS:
        _, form = attack_form(method)
        assert form == "exact" if method in DIFFERENTIABLE_METHODS else form == f"surrogate:{SURROGATES[method][0]}"


@pytest.mark.parametrize("method", BUILTIN_METHODS)
def test_untargeted_attack_runs_for_every_method(method, random_mini_vit, images):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        adv = adaptive_attack(random_mini_vit, images, RADIUS, method=method, loss="topk", steps=2, seed=1)
    surrogate = [w for w in caught if "surrogate" in str(w.message)]
    assert bool(surrogate) == (method in SURROGATES)  # a surrogate is never used silently
    assert (adv - images).abs().max() <= RADIUS + 1e-6 and not torch.equal(adv, images)


def test_no_attack_goes_through_the_oracle(random_mini_vit, images):
    with pytest.raises(ValueError, match="ignores its input"):
        adaptive_attack(random_mini_vit, images[:1], RADIUS, method="rollout", variant="oracle", steps=1)


@pytest.mark.parametrize("variant", purifier_names())
def test_attack_through_every_dds_variant(variant, random_mini_vit, images, random_denoiser):
    sigma = get_variant(variant).default_sigma
    adv = adaptive_attack(
        random_mini_vit,
        images[:1],
        RADIUS,
        method="rollout",
        denoiser=random_denoiser,
        variant=variant,
        sigma=sigma,
        eot_samples=2,
        steps=1,
        loss="topk",
        seed=0,
    )
    assert (adv - images[:1]).abs().max() <= RADIUS + 1e-6 and not torch.equal(adv, images[:1])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_variant_flagged_deterministic_purifies_every_copy_alike(variant, images, random_denoiser):
    """EOT takes one copy through a deterministic variant: the flag must be true of the purifier."""
    spec = get_variant(variant)
    copies = images[:1].repeat(3, 1, 1, 1)
    out = [spec.purify(random_denoiser, copies, spec.default_sigma, torch.Generator().manual_seed(s)) for s in (0, 1)]
    alike = torch.equal(out[0], out[1]) and all(torch.equal(out[0][0], c) for c in out[0])
    assert alike == spec.deterministic, variant


def test_eot_through_the_identity_is_the_plain_map(random_mini_vit, images):
    gen = torch.Generator().manual_seed(0)
    plain = smoothed_patch_map(random_mini_vit, images, "rollout", None, None, None, 4, gen)
    through = smoothed_patch_map(random_mini_vit, images, "rollout", None, "identity", 0.1, 4, gen)
    torch.testing.assert_close(through, plain, rtol=0, atol=1e-6)


def test_bpda_is_identity_backward_and_the_default_for_chains(random_denoiser, images):
    assert default_gradient("fvit") == default_gradient("re") == "bpda" and default_gradient("carlini") == "exact"
    x = images[:1].clone().requires_grad_(True)
    out = purify_for_attack(get_variant("carlini"), random_denoiser, x, 0.12, torch.Generator().manual_seed(0), "bpda")
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert torch.equal(grad, torch.ones_like(x))  # d purify / dx ~ I


def test_targeted_attack_moves_the_map_toward_the_target_and_keeps_the_prediction(random_mini_vit, images):
    score = DIFFERENTIABLE_METHODS["rollout"]
    with torch.no_grad():
        clean_map = minmax(score(random_mini_vit, images))
        clean_pred = random_mini_vit(images).argmax(1)
    target_map = clean_map.flip(dims=(1,))  # the map mirrored through the patch grid
    adv = adaptive_attack(
        random_mini_vit, images, RADIUS, method="rollout", loss="targeted", target_map=target_map, steps=10, seed=0
    )
    with torch.no_grad():
        adv_map = minmax(score(random_mini_vit, adv))
        adv_pred = random_mini_vit(adv).argmax(1)
    far_before = (clean_map - target_map).pow(2).mean(1)
    far_after = (adv_map - target_map).pow(2).mean(1)
    assert (far_after < far_before).all() and torch.equal(adv_pred, clean_pred)
    with pytest.raises(ValueError, match="target_map"):
        adaptive_attack(random_mini_vit, images, RADIUS, loss="targeted")
