"""An adaptive attack on the explanation itself, through DDS with expectation over the noise (EOT).

PGD (L-infinity, radius in [0,1] pixel units, sign steps, random start) that MAXIMISES how much
the map moves, instead of attacking the prediction:

- loss "l2": mean squared difference between the min-max normalised patch maps of x_adv and x;
- loss "topk": minus the share of the x_adv map's mass that falls on the clean map's top-k patches;
- loss "targeted": the manipulation attack (Dombrowski et al., NeurIPS 2019): drive the map toward a
  chosen `target_map` while keeping the (smoothed) softmax, `explanation_loss`.

With a DDS `variant`, every step draws `eot_samples` fresh noise samples per image, purifies them
with the variant's purifier (autograd flows through the denoiser) and attacks the mean of their
maps (Athalye et al.'s expectation over transformation); the clean reference map is computed the
same way. A deterministic variant (the identity control) draws no noise: its expectation is one
copy. Through the multi-step variants (fvit, re, denoise_only: ancestral chains) the default
gradient is BPDA (identity backward of the purifier, `purify_for_attack`); `gradient="exact"`
differentiates the whole chain. Registered explainers return detached maps, so the methods are
recomputed differentiably (`harness.attacks.differentiable`): raw attention, rollout, attention
GradCAM and generic attention exactly; lrp, partial_lrp, transformer_attribution and
attribution_rollout through a named surrogate (`SURROGATES`), with a warning.
"""

from __future__ import annotations

import warnings

import torch

from harness.attacks.differentiable import (  # noqa: F401  (re-exported)
    DIFFERENTIABLE_METHODS,
    SURROGATES,
    ScoreFn,
    attack_form,
    raw_attention_scores,
    rollout_scores,
)
from harness.attacks.pgd import check_radius, random_start_noise
from harness.models.classifier import ViTClassifier
from harness.models.denoiser import Denoiser
from harness.smoothing.dds import check_sigma, get_variant

MULTI_STEP_VARIANTS = ("fvit", "re", "denoise_only")  # ancestral chains: BPDA by default
GRADIENTS = ("exact", "bpda")
UNTARGETED_LOSSES = ("l2", "topk")  # the runner's `adaptive_loss` choices
LOSSES = (*UNTARGETED_LOSSES, "targeted")
KEEP_WEIGHT = 10.0  # targeted loss: weight of the squared change of the softmax (prediction kept)


def minmax(scores: torch.Tensor) -> torch.Tensor:
    """Per-row min-max normalisation that keeps gradients (a constant row becomes zeros)."""
    lo = scores.min(dim=1, keepdim=True).values
    hi = scores.max(dim=1, keepdim=True).values
    return (scores - lo) / (hi - lo).clamp_min(1e-12)


def _score_fn(method: str) -> ScoreFn:
    fn, form = attack_form(method)
    if form != "exact":
        warnings.warn(f"the attack on {method!r} goes through its {form} ({SURROGATES[method][1]})", stacklevel=3)
    return fn


def default_gradient(variant: str | None) -> str:
    """ "bpda" for the multi-step (ancestral-chain) variants, "exact" autograd for the others."""
    return "bpda" if variant in MULTI_STEP_VARIANTS else "exact"


def purify_for_attack(
    spec, denoiser: Denoiser | None, x: torch.Tensor, sigma: float, gen: torch.Generator, gradient: str
) -> torch.Tensor:
    """The variant's purified copies; gradient "exact" backpropagates through the purifier (every UNet
    call), "bpda" (Athalye et al. 2018's backward-pass differentiable approximation) takes the purifier's
    output forward and the identity backward: d purify(x) / dx ~ I."""
    if gradient == "exact":
        return spec.purify(denoiser, x, sigma, gen)
    if gradient == "bpda":
        with torch.no_grad():
            out = spec.purify(denoiser, x.detach(), sigma, gen)
        return x + (out - x).detach()
    raise ValueError(f"unknown gradient approximation {gradient!r}; choose from {GRADIENTS}")


def smoothed_patch_map(
    model: ViTClassifier,
    images: torch.Tensor,
    method: str,
    denoiser: Denoiser | None,
    variant: str | None,
    sigma: float | None,
    eot_samples: int,
    generator: torch.Generator,
    gradient: str | None = None,
    with_probs: bool = False,
):
    """Mean over `eot_samples` purified copies of the normalised patch map, (B, N); differentiable. A
    deterministic variant purifies every copy alike, so it takes one (the mean of equal maps is that map).

    with_probs=True also returns the mean softmax over the same copies, (B, C)."""
    score = _score_fn(method)
    if variant is None:
        maps, x, m = minmax(score(model, images)), images, 1
    else:
        spec = get_variant(variant)
        m = 1 if spec.deterministic else eot_samples
        x = purify_for_attack(
            spec,
            denoiser,
            images.repeat_interleave(m, dim=0),
            sigma,
            generator,
            gradient or default_gradient(variant),
        )
        maps = minmax(score(model, x))
    maps = maps.view(images.shape[0], m, -1).mean(dim=1)
    if not with_probs:
        return maps
    probs = model(x).softmax(dim=1).view(images.shape[0], m, -1).mean(dim=1)
    return maps, probs


def explanation_loss(
    adv_map: torch.Tensor,
    clean_map: torch.Tensor,
    loss: str,
    topk: float,
    target_map: torch.Tensor | None = None,
    adv_probs: torch.Tensor | None = None,
    clean_probs: torch.Tensor | None = None,
    keep_weight: float = KEEP_WEIGHT,
) -> torch.Tensor:
    """The quantity the attack maximises (summed over the batch).

    "targeted" (Dombrowski et al. 2019's manipulation): -(mean squared distance of the map to
    `target_map` (min-max normalised) + keep_weight * squared change of the softmax)."""
    if loss == "targeted":
        if target_map is None or adv_probs is None or clean_probs is None:
            raise ValueError("the targeted loss needs target_map and the adversarial and clean probabilities")
        far = (adv_map - minmax(target_map)).pow(2).mean(dim=1)
        return -(far + keep_weight * (adv_probs - clean_probs).pow(2).sum(dim=1)).sum()
    if loss == "l2":
        return (adv_map - clean_map).pow(2).mean(dim=1).sum()
    k = max(1, round(topk * clean_map.shape[1]))
    top = clean_map.topk(k, dim=1).indices
    share = adv_map.gather(1, top).sum(dim=1) / adv_map.sum(dim=1).clamp_min(1e-12)
    return -share.sum()


def adaptive_attack(
    model: ViTClassifier,
    images: torch.Tensor,
    radius: float,
    method: str = "rollout",
    denoiser: Denoiser | None = None,
    variant: str | None = None,
    sigma: float | None = None,
    eot_samples: int = 4,
    steps: int = 10,
    step_size: float | None = None,
    loss: str = "l2",
    topk: float = 0.1,
    random_start: bool = True,
    seed: int = 0,
    target_map: torch.Tensor | None = None,
    gradient: str | None = None,
    keep_weight: float = KEEP_WEIGHT,
) -> torch.Tensor:
    """PGD on the explanation `method` (optionally through DDS `variant` with EOT); [0,1] in and out.

    radius and step_size (default radius/5) in [0,1] pixel units; sigma in pixel units (None = the
    variant's default). loss "targeted" drives the map toward `target_map` (B, N_patches) while keeping
    the softmax. gradient: "exact" or "bpda" through the purifier (None: BPDA for the multi-step
    variants, exact otherwise). A method without an exact differentiable form is attacked through its
    named surrogate (`harness.attacks.differentiable.SURROGATES`), with a warning.
    Returns x_adv with |x_adv - images|_inf <= radius and x_adv in [0,1].
    """
    radius = check_radius(radius)
    model.check_images(images)
    _score_fn(method)
    if loss not in LOSSES:
        raise ValueError(f"unknown adaptive-attack loss {loss!r}; choose from {LOSSES}")
    if variant is not None:
        spec = get_variant(variant)
        if spec.needs_clean:
            raise ValueError(
                f"DDS variant {variant!r} ignores its input (it is handed the clean image), so no attack goes "
                "through it: attack the plain map (variant=None), as the runner does for it"
            )
        sigma = check_sigma(spec.default_sigma if sigma is None else sigma)
        if spec.needs_denoiser and denoiser is None:
            raise ValueError(f"DDS variant {variant!r} needs a denoiser; got None")
        spec.unet_calls(denoiser, sigma)
        if eot_samples < 1:
            raise ValueError(f"eot_samples must be >= 1, got {eot_samples}")
    if radius == 0.0 or steps == 0:
        return images.clone()
    step_size = radius / 5.0 if step_size is None else float(step_size)
    gen = torch.Generator(device=images.device).manual_seed(seed)
    images = images.detach()

    targeted = loss == "targeted"
    if targeted and (target_map is None or target_map.shape[0] != images.shape[0]):
        raise ValueError("the targeted attack needs target_map of shape (B, N_patches)")

    def patch_map(x: torch.Tensor):
        return smoothed_patch_map(model, x, method, denoiser, variant, sigma, eot_samples, gen, gradient, targeted)

    with torch.no_grad():
        clean = patch_map(images)
    clean_map, clean_probs = clean if targeted else (clean, None)
    adv = images.clone()
    if random_start:
        adv = (adv + random_start_noise(images, radius, seed)).clamp(0, 1)
    for _ in range(steps):
        adv.requires_grad_(True)
        with torch.enable_grad():
            out = patch_map(adv)
            adv_map, adv_probs = out if targeted else (out, None)
            objective = explanation_loss(
                adv_map, clean_map, loss, topk, target_map, adv_probs, clean_probs, keep_weight
            )
            (grad,) = torch.autograd.grad(objective, adv)
        adv = adv.detach() + step_size * grad.sign()
        adv = (images + (adv - images).clamp(-radius, radius)).clamp(0, 1).detach()
    return adv
