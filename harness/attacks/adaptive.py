"""An adaptive attack on the explanation itself, through DDS with expectation over the noise (EOT).

PGD (L-infinity, radius in [0,1] pixel units, sign steps, random start) that MAXIMISES how much
the map moves, instead of attacking the prediction:

- loss "l2": mean squared difference between the min-max normalised patch maps of x_adv and x;
- loss "topk": minus the share of the x_adv map's mass that falls on the clean map's top-k patches.

With a DDS `variant`, every step draws `eot_samples` fresh noise samples per image, purifies them
with the variant's purifier (autograd flows through the denoiser) and attacks the mean of their
maps (Athalye et al.'s expectation over transformation); the clean reference map is computed the
same way. Registered explainers return detached maps, so this module recomputes the attention
methods differentiably (`DIFFERENTIABLE_METHODS`): raw attention and rollout, with the same
definitions as `harness.explainers.attention`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from harness.attacks.pgd import check_radius, random_start_noise
from harness.explainers.attention import rollout_matrix
from harness.explainers.hooks import capture_attention
from harness.models.classifier import ViTClassifier
from harness.models.denoiser import Denoiser
from harness.models.tokens import num_prefix_tokens
from harness.smoothing.dds import check_sigma, get_variant

ScoreFn = Callable[[ViTClassifier, torch.Tensor], torch.Tensor]


def _attentions(model: ViTClassifier, images: torch.Tensor) -> list[torch.Tensor]:
    with capture_attention(model) as rec:
        model(images)
    return rec.attentions


def raw_attention_scores(model: ViTClassifier, images: torch.Tensor) -> torch.Tensor:
    """Differentiable raw attention: mean over heads of the last block's CLS row, (B, N_patches)."""
    return _attentions(model, images)[-1].mean(dim=1)[:, 0, num_prefix_tokens(model):]


def rollout_scores(model: ViTClassifier, images: torch.Tensor, start_layer: int = 1) -> torch.Tensor:
    """Differentiable rollout (start layer 1, as the registered `rollout`), (B, N_patches)."""
    return rollout_matrix(_attentions(model, images), start_layer)[:, 0, num_prefix_tokens(model):]


DIFFERENTIABLE_METHODS: dict[str, ScoreFn] = {
    "raw_attention": raw_attention_scores,
    "rollout": rollout_scores,
}
LOSSES = ("l2", "topk")


def minmax(scores: torch.Tensor) -> torch.Tensor:
    """Per-row min-max normalisation that keeps gradients (a constant row becomes zeros)."""
    lo = scores.min(dim=1, keepdim=True).values
    hi = scores.max(dim=1, keepdim=True).values
    return (scores - lo) / (hi - lo).clamp_min(1e-12)


def _score_fn(method: str) -> ScoreFn:
    try:
        return DIFFERENTIABLE_METHODS[method]
    except KeyError:
        raise ValueError(
            f"the adaptive attack needs a differentiable form of {method!r}; available: "
            f"{sorted(DIFFERENTIABLE_METHODS)}"
        ) from None


def smoothed_patch_map(
    model: ViTClassifier,
    images: torch.Tensor,
    method: str,
    denoiser: Denoiser | None,
    variant: str | None,
    sigma: float | None,
    eot_samples: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Mean over `eot_samples` purified copies of the normalised patch map, (B, N); differentiable."""
    score = _score_fn(method)
    if variant is None:
        return minmax(score(model, images))
    spec = get_variant(variant)
    reps = images.repeat_interleave(eot_samples, dim=0)
    purified = spec.purify(denoiser, reps, sigma, generator)
    maps = minmax(score(model, purified))
    return maps.view(images.shape[0], eot_samples, -1).mean(dim=1)


def explanation_loss(adv_map: torch.Tensor, clean_map: torch.Tensor, loss: str, topk: float) -> torch.Tensor:
    """The quantity the attack maximises (summed over the batch)."""
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
) -> torch.Tensor:
    """PGD on the explanation `method` (optionally through DDS `variant` with EOT); [0,1] in and out.

    radius and step_size (default radius/5) in [0,1] pixel units; sigma in pixel units (None = the
    variant's default). Returns x_adv with |x_adv - images|_inf <= radius and x_adv in [0,1].
    """
    radius = check_radius(radius)
    model.check_images(images)
    _score_fn(method)
    if loss not in LOSSES:
        raise ValueError(f"unknown adaptive-attack loss {loss!r}; choose from {LOSSES}")
    if variant is not None:
        spec = get_variant(variant)
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

    def patch_map(x: torch.Tensor) -> torch.Tensor:
        return smoothed_patch_map(model, x, method, denoiser, variant, sigma, eot_samples, gen)

    with torch.no_grad():
        clean_map = patch_map(images)
    adv = images.clone()
    if random_start:
        adv = (adv + random_start_noise(images, radius, seed)).clamp(0, 1)
    for _ in range(steps):
        adv.requires_grad_(True)
        with torch.enable_grad():
            objective = explanation_loss(patch_map(adv), clean_map, loss, topk)
            (grad,) = torch.autograd.grad(objective, adv)
        adv = adv.detach() + step_size * grad.sign()
        adv = (images + (adv - images).clamp(-radius, radius)).clamp(0, 1).detach()
    return adv
