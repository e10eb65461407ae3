"""Certified top-k faithfulness region by Gaussian randomised smoothing (Cohen, Rosenfeld, Kolter, ICML 2019).

FViT (Hu et al., ICML 2024) defines a faithful explanation as one whose top-k indices and prediction
stay stable within a radius R, and certifies it with its Algorithm 2; the statement of that bound
could not be read here, so this module applies the *standard* Gaussian randomised-smoothing L2
certificate of Cohen et al. (their Theorem 1, with the Monte Carlo CERTIFY procedure) to top-k
membership, and names it so ("cohen2019 L2 certificate applied to top-k membership").

Base function: z -> the map of `method` on rest(z), z = x + sigma * eps, eps ~ N(0, I) in [0, 1] pixel
space, where rest is the DDS variant's purifier after its input noise (`CERTIFIABLE`; a variant that
draws no Gaussian input noise cannot be certified this way). Each sample explains its own predicted
class (as the papers' code does). For every map entry j (a pixel of the (H, W) map), h_j(z) = 1 if
j is in the top-k of the map (stable top-k, `harness.metrics.faithfulness.topk_indices`). The smoothed
membership g_j(x) = [P(h_j(x + sigma eps) = 1) > 1/2] is then constant for all ||x' - x||_2 < R_j =
sigma * Phi^-1(p_j), p_j a lower confidence bound of the majority side's probability.

Monte Carlo (CERTIFY): `n0` draws pick each entry's majority side and the top class, `n` fresh draws
bound them: one-sided Clopper-Pearson lower bounds (scipy's beta quantile) at level alpha / (N + 1),
Bonferroni over the N entries and the prediction, so every radius of an image holds jointly with
probability >= 1 - alpha. A bound <= 1/2 abstains (radius 0). Radii are L2 in [0, 1] pixel units.

Summaries per image: certified_overlap(r) = |{j in S(x): R_j > r}| / k, a lower bound of the top-k
overlap |S(x) & S(x')| / k of the smoothed membership sets for every ||x' - x||_2 <= r; and the
faithfulness radius at overlap q: the largest r with certified_overlap(r) >= q, capped by the
prediction's radius (FViT's region: top-k and prediction both stable).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import beta, norm

from harness.explainers.registry import explain
from harness.metrics.faithfulness import resolve_k, topk_indices
from harness.models.classifier import ViTClassifier
from harness.models.denoiser import Denoiser

BOUND_NAME = "cohen2019 L2 certificate applied to top-k membership"
Rest = Callable[[Denoiser | None, torch.Tensor, float, torch.Generator], torch.Tensor]


def _need(denoiser: Denoiser | None, variant: str) -> Denoiser:
    if denoiser is None:
        raise ValueError(f"certifying DDS variant {variant!r} needs its denoiser; got None")
    return denoiser


# variant -> what the purifier does to x + sigma * eps (its Gaussian input noise drawn here).
CERTIFIABLE: dict[str, Rest] = {
    "noise_only": lambda d, z, s, g: z.clamp(0.0, 1.0),
    "carlini": lambda d, z, s, g: _need(d, "carlini").denoise_one_shot(z, s),
    "re": lambda d, z, s, g: _need(d, "re").fvit_denoise(z, s, g),
    "fvit": lambda d, z, s, g: (
        _need(d, "fvit").fvit_denoise(z, s, g, add_noise=False, clip=False)
        + s * torch.randn(z.shape, generator=g, device=z.device, dtype=z.dtype)
    ).clamp(0, 1),
}


def rest_of(variant: str) -> Rest:
    try:
        return CERTIFIABLE[variant]
    except KeyError:
        raise ValueError(
            f"DDS variant {variant!r} draws no Gaussian input noise to certify with; certifiable: {sorted(CERTIFIABLE)}"
        ) from None


def clopper_pearson_lower(successes: np.ndarray, trials: int, alpha: float) -> np.ndarray:
    """One-sided (1 - alpha) Clopper-Pearson lower bound of a binomial proportion (0 when successes = 0)."""
    s = np.asarray(successes, dtype=float)
    return np.where(s > 0, beta.ppf(alpha, np.maximum(s, 1), trials - s + 1), 0.0)


def clopper_pearson_upper(successes: np.ndarray, trials: int, alpha: float) -> np.ndarray:
    """One-sided (1 - alpha) Clopper-Pearson upper bound (1 when successes = trials)."""
    return 1.0 - clopper_pearson_lower(trials - np.asarray(successes), trials, alpha)


@dataclass(frozen=True)
class SmoothingSetup:
    """What is smoothed: `method` on `variant`'s purifier at pixel noise std `sigma`, top-k size `topk`."""

    method: str
    variant: str
    sigma: float
    topk: float | int = 0.1
    denoiser: Denoiser | None = None
    max_batch: int = 64

    def check(self, model: ViTClassifier) -> None:
        rest_of(self.variant)
        if not 0.0 < self.sigma <= 1.0:
            raise ValueError(f"sigma={self.sigma} must be a pixel-space std in (0, 1]")
        if self.variant != "noise_only" and _need(self.denoiser, self.variant).sample_size != model.image_size:
            raise ValueError(
                "the certificate needs i.i.d. pixel noise at the denoiser's resolution: the denoiser "
                f"is {self.denoiser.sample_size}px, the model {model.image_size}px"
            )

    def purified(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        z = x + self.sigma * torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        return rest_of(self.variant)(self.denoiser, z, self.sigma, gen)


@torch.no_grad()
def sample_counts(
    model: ViTClassifier, images: torch.Tensor, setup: SmoothingSetup, num: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(B, N) top-k membership counts of the map entries and (B, C) top-1 class counts over `num` draws."""
    gen = torch.Generator(device=images.device).manual_seed(seed)
    b = images.shape[0]
    h, w = images.shape[-2:]
    members = np.zeros((b, h * w), dtype=np.int64)
    classes = np.zeros((b, model.num_classes), dtype=np.int64)
    per = max(1, setup.max_batch // b)
    done = 0
    while done < num:
        m = min(per, num - done)
        x = setup.purified(images.repeat_interleave(m, dim=0), gen)
        pred = model(x).argmax(dim=1)
        maps = explain(setup.method, model, x, pred)
        top = topk_indices(maps, setup.topk).cpu().numpy().reshape(b, m, -1)
        for i in range(b):
            np.add.at(members[i], top[i].ravel(), 1)
        np.add.at(classes, (np.repeat(np.arange(b), m), pred.cpu().numpy()), 1)
        done += m
    return members, classes


@dataclass(frozen=True)
class TopkCertificate:
    """Per-image certificate: majority sets, per-entry L2 radii, the prediction and its radius."""

    in_set: np.ndarray  # (B, N) bool: the n0-selected majority side is "in the top-k"
    radii: np.ndarray  # (B, N) L2 radius of each entry's side (0 = abstain)
    prediction: np.ndarray  # (B,) smoothed top class (n0 selection)
    prediction_radius: np.ndarray  # (B,)
    k: int
    sigma: float
    alpha: float
    n: int
    bound: str = BOUND_NAME

    def certified_overlap(self, radius: float) -> np.ndarray:
        """(B,) |{j in S(x): R_j > radius}| / k: a lower bound of the top-k overlap within `radius`."""
        return ((self.radii > radius) & self.in_set).sum(axis=1) / self.k

    def faithful_radius(self, overlap: float = 0.5) -> np.ndarray:
        """(B,) largest r with certified_overlap(r) >= `overlap`, capped by the prediction radius."""
        need = max(1, math.ceil(overlap * self.k))
        inside = np.sort(np.where(self.in_set, self.radii, 0.0), axis=1)[:, ::-1]
        return np.minimum(inside[:, need - 1], self.prediction_radius)


def certify_topk(
    model: ViTClassifier,
    images: torch.Tensor,
    setup: SmoothingSetup,
    n0: int = 8,
    n: int = 64,
    alpha: float = 0.05,
    seed: int = 0,
) -> TopkCertificate:
    """Cohen et al.'s CERTIFY applied to every entry's top-k membership and to the prediction."""
    setup.check(model)
    model.check_images(images)
    if n0 < 1 or n < 1 or not 0.0 < alpha < 1.0:
        raise ValueError(f"need n0 >= 1, n >= 1 and alpha in (0, 1); got n0={n0}, n={n}, alpha={alpha}")
    num_entries = images.shape[-2] * images.shape[-1]
    k = resolve_k(setup.topk, num_entries)
    sel_members, sel_classes = sample_counts(model, images, setup, n0, seed)
    members, classes = sample_counts(model, images, setup, n, seed + 1)
    level = alpha / (num_entries + 1)
    in_set = sel_members * 2 > n0
    majority = np.where(in_set, members, n - members)
    radii = _radius(clopper_pearson_lower(majority, n, level), setup.sigma)
    prediction = sel_classes.argmax(axis=1)
    top_count = classes[np.arange(len(prediction)), prediction]
    pred_radius = _radius(clopper_pearson_lower(top_count, n, level), setup.sigma)
    return TopkCertificate(in_set, radii, prediction, pred_radius, k, setup.sigma, alpha, n)


def _radius(p_lower: np.ndarray, sigma: float) -> np.ndarray:
    return np.where(p_lower > 0.5, sigma * norm.ppf(np.clip(p_lower, 0.5, 1 - 1e-16)), 0.0)


def pgd_l2(
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    radius: torch.Tensor,
    steps: int,
    seed: int = 0,
) -> torch.Tensor:
    """L2 PGD maximising `loss_fn` (summed over the batch) within per-image L2 `radius` ([0, 1] pixel units),
    normalised-gradient steps of 2.5 r / steps, random start, each iterate projected onto the ball and [0, 1]."""
    b = images.shape[0]
    r = radius.to(images).view(b, 1, 1, 1)
    gen = torch.Generator(device=images.device).manual_seed(seed)
    start = torch.randn(images.shape, generator=gen, device=images.device)
    adv = _project(images, images + start / start.flatten(1).norm(dim=1).view(b, 1, 1, 1) * r * 0.5, r)
    for _ in range(max(0, steps)):
        adv.requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(loss_fn(adv), adv)
        g = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(b, 1, 1, 1)
        adv = _project(images, adv.detach() + 2.5 * r / max(1, steps) * g, r)
    return adv.detach()


def _project(x: torch.Tensor, y: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    d = y - x
    n = d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    d = d * torch.where(n > r, r / n.clamp_min(1e-12), torch.ones_like(n))
    return (x + d).clamp(0.0, 1.0)  # the box projection is non-expansive: still within the ball


def soft_topk_pixel_map(patch_scores: torch.Tensor, model: ViTClassifier) -> torch.Tensor:
    """Differentiable (B, H*W) min-max map: patch scores upsampled bilinearly as `to_maps` does."""
    g, s = model.grid_size, model.image_size
    up = F.interpolate(patch_scores.view(-1, 1, g, g), size=(s, s), mode="bilinear", align_corners=False)
    flat = up.flatten(1)
    lo, hi = flat.min(dim=1, keepdim=True).values, flat.max(dim=1, keepdim=True).values
    return (flat - lo) / (hi - lo).clamp_min(1e-12)
