"""Insertion and deletion curves and their AUCs (Petsiuk, Das, Saenko, RISE, BMVC 2018).

For fractions p in 0, 1/n, ..., 1 (n = `num_steps`), pixels are ranked by the map, most relevant
first (a stable descending sort: among equal values the lower row-major index comes first, as in
`harness.metrics.perturbation`), and the model's softmax probability of the explained class is read:

- deletion: the top ``int(H * W * p)`` pixels of the clean image set to 0 ([0, 1] pixel space, all
  channels; RISE's deletion substrate). A faithful map makes the probability fall fast: lower is better.
- insertion: start from a Gaussian-blurred copy of the image (RISE's insertion substrate; kernel
  `blur_kernel` pixels, std `blur_sigma` pixels) and put back the top ``int(H * W * p)`` clean pixels.
  A faithful map makes the probability rise fast: higher is better.

AUC ("prob_trapz"): trapezoid of the (n + 1)-point probability curve over x = p in [0, 1]; in [0, 1].
It is linear in the curve, so the AUC of the mean curve is the mean of per-image AUCs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torchvision.transforms.functional import gaussian_blur

from harness.metrics.perturbation import _check_maps, deletion_order

NUM_STEPS = 10
BLUR_KERNEL, BLUR_SIGMA = 11, 5.0  # RISE's insertion blur, in pixels


def curve_fractions(num_steps: int = NUM_STEPS) -> np.ndarray:
    """The x axis of a curve: num_steps + 1 evenly spaced fractions 0, 1/n, ..., 1."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    return np.linspace(0.0, 1.0, num_steps + 1)


def _ranked_masks(maps: torch.Tensor, num_steps: int) -> torch.Tensor:
    """(S, B, 1, H, W) bool: the top int(H*W*p) pixels of each map at each fraction p."""
    b, h, w = maps.shape
    order = deletion_order(maps, positive=True)
    out = []
    for p in curve_fractions(num_steps):
        k = int(h * w * p)
        m = torch.zeros(b, h * w, dtype=torch.bool, device=maps.device)
        m.scatter_(1, order[:, :k].to(maps.device), True)
        out.append(m.view(b, 1, h, w))
    return torch.stack(out)


def substrate_images(
    images: torch.Tensor,
    maps: torch.Tensor,
    mode: str,
    num_steps: int = NUM_STEPS,
    blur_kernel: int = BLUR_KERNEL,
    blur_sigma: float = BLUR_SIGMA,
) -> torch.Tensor:
    """(S, B, 3, H, W): the deletion or insertion images at each fraction."""
    _check_maps(images, maps)
    masks = _ranked_masks(maps.to(images.device), num_steps)
    if mode == "deletion":
        return torch.stack([images.masked_fill(m, 0.0) for m in masks])
    if mode == "insertion":
        blurred = gaussian_blur(images, [blur_kernel, blur_kernel], [blur_sigma, blur_sigma])
        return torch.stack([torch.where(m, images, blurred) for m in masks])
    raise ValueError(f"mode must be 'insertion' or 'deletion', got {mode!r}")


@torch.no_grad()
def probability_curve(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    maps: torch.Tensor,
    target: torch.Tensor,
    mode: str,
    num_steps: int = NUM_STEPS,
    max_batch: int = 256,
) -> torch.Tensor:
    """(B, num_steps + 1) softmax probability of `target` along the insertion or deletion curve."""
    target = torch.as_tensor(target, device=images.device).long().reshape(-1)
    if target.numel() != images.shape[0]:
        raise ValueError(f"{target.numel()} targets for a batch of {images.shape[0]} images")
    stack = substrate_images(images, maps, mode, num_steps)
    flat = stack.flatten(0, 1)
    probs = torch.cat([model(c).softmax(dim=1) for c in flat.split(max_batch)]).view(*stack.shape[:2], -1)
    return probs.gather(2, target.view(1, -1, 1).expand(stack.shape[0], -1, 1))[..., 0].T.float()


def curve_auc(curve: np.ndarray | torch.Tensor | Sequence[float]) -> np.ndarray | float:
    """Trapezoid of a probability curve over evenly spaced x in [0, 1] (last axis: the n + 1 points)."""
    c = curve.detach().cpu().double().numpy() if isinstance(curve, torch.Tensor) else np.asarray(curve, float)
    if c.ndim == 0 or c.shape[-1] < 2:
        raise ValueError(f"a curve needs at least 2 points on its last axis; got shape {c.shape}")
    if not np.isfinite(c).all() or (c < 0).any() or (c > 1).any():
        raise ValueError("curve values must be probabilities in [0, 1]")
    out = np.trapezoid(c, x=curve_fractions(c.shape[-1] - 1), axis=-1)
    return float(out) if np.ndim(out) == 0 else out
