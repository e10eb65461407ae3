"""Positive and negative perturbation tests (Chefer 2021; FViT and Re), docs/PROTOCOL.md section 6.

For each step p in 0.1 ... 0.9, the top ``int(H * W * p)`` pixels of the map are deleted (set to 0 in
[0, 1] pixel space, all three channels) from the CLEAN image, and the score is top-1 correctness of
the model on the perturbed image against the ground-truth label. The map may come from an attacked
and/or smoothed image; the pixels are always deleted from the clean image the caller passes.

- positive: most relevant pixels first (a faithful map makes accuracy fall fast: lower AUC is better);
- negative: least relevant pixels first (higher AUC is better).

Ranking ties are broken deterministically by a stable sort: among equal map values the pixel with
the lower row-major index (row * W + col) is deleted first, in both tests. (Chefer's code uses
``torch.topk``, whose order among ties is unspecified.)

Two AUC conventions, each under its own name, both over a 10-point curve
``[clean accuracy, acc@0.1, ..., acc@0.9]`` of fractions in [0, 1]:

- `chefer_auc`: trapezoid over x = 0, 0.1, ..., 0.9 of the 10 points, times 100 (maximum 90);
- `re_auc`: trapezoid with unit spacing over the 9 perturbed points only (no clean point), divided
  by 8 (maximum 1).

Both are linear in the curve, so the AUC of the dataset-mean curve equals the mean of per-image AUCs.
Which class the map explains (the prediction, "pred", or the label, "target") is the caller's choice;
`perturbation_test` records it in its result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from harness.models.classifier import fused_attention

PERTURBATION_STEPS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
CURVE_X: tuple[float, ...] = (0.0, *PERTURBATION_STEPS)
EXPLAINED_CLASSES: tuple[str, ...] = ("pred", "target")
Explained = Literal["pred", "target"]


def _check_maps(images: torch.Tensor, maps: torch.Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W); got {tuple(images.shape)}")
    b, _, h, w = images.shape
    if tuple(maps.shape) != (b, h, w):
        raise ValueError(f"maps must be (B, H, W) = {(b, h, w)} to match the images; got {tuple(maps.shape)}")
    if not torch.isfinite(maps).all():
        raise ValueError("maps contain NaN or infinite values")


def deleted_counts(num_pixels: int, steps: Sequence[float] = PERTURBATION_STEPS) -> list[int]:
    """Pixels deleted at each step: ``int(num_pixels * p)`` (floor), as Chefer's code."""
    for p in steps:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"perturbation step {p} is outside [0, 1]")
    return [int(num_pixels * p) for p in steps]


def deletion_order(maps: torch.Tensor, positive: bool) -> torch.Tensor:
    """(B, H*W) row-major pixel indices in deletion order; stable (ties: lower index first).

    positive=True: descending map value (most relevant first); False: ascending (least relevant first).
    """
    flat = maps.detach().reshape(maps.shape[0], -1)
    return torch.sort(flat, dim=1, descending=positive, stable=True).indices


def perturb_images(
    images: torch.Tensor, maps: torch.Tensor, positive: bool, steps: Sequence[float] = PERTURBATION_STEPS
) -> torch.Tensor:
    """(S, B, 3, H, W): for each step, `images` with the map's top pixels set to 0 in all channels."""
    _check_maps(images, maps)
    b, _, h, w = images.shape
    order = deletion_order(maps, positive).to(images.device)
    out = []
    for k in deleted_counts(h * w, steps):
        drop = torch.zeros(b, h * w, dtype=torch.bool, device=images.device)
        drop.scatter_(1, order[:, :k], True)
        out.append(images.masked_fill(drop.view(b, 1, h, w), 0.0))
    return torch.stack(out)


@torch.no_grad()
def _top1(model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, max_batch: int) -> torch.Tensor:
    with fused_attention(model):  # nothing reads the attention of these forwards
        return torch.cat([model(chunk).argmax(dim=1) for chunk in images.split(max_batch)])


def _check_labels(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    labels = torch.as_tensor(labels, device=images.device).long().reshape(-1)
    if labels.numel() != images.shape[0]:
        raise ValueError(f"{labels.numel()} labels for a batch of {images.shape[0]} images")
    if (labels < 0).any():
        raise ValueError("the perturbation test needs ground-truth labels; got a negative label (no label)")
    return labels


def clean_correctness(
    model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, labels: torch.Tensor, max_batch: int = 256
) -> torch.Tensor:
    """(B,) float top-1 correctness of the clean images: every curve's first point. The clean images go
    through the model on their own, so one result serves every map of the batch bit for bit."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be positive, got {max_batch}")
    labels = _check_labels(images, labels)
    return (_top1(model, images, max_batch) == labels).float()


def perturbation_correctness(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    maps: torch.Tensor,
    labels: torch.Tensor,
    positive: bool,
    steps: Sequence[float] = PERTURBATION_STEPS,
    max_batch: int = 256,
    clean: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, 1 + S) float correctness in {0, 1}: [clean, step 1, ..., step S] per image.

    images: clean (B, 3, H, W) in [0, 1]; maps: (B, H, W) ranking the pixels (any real scale);
    labels: (B,) ground-truth classes. The perturbed images go through the model a whole number of
    steps at a time (at most `max_batch` images per call, one step split when B exceeds it), the clean
    images in a call of their own; `clean`: their correctness from `clean_correctness` on the same model,
    images and labels, to share it among the maps of a batch (default: computed here).
    """
    _check_maps(images, maps)
    labels = _check_labels(images, labels)
    if max_batch < 1:
        raise ValueError(f"max_batch must be positive, got {max_batch}")
    if clean is None:
        clean = clean_correctness(model, images, labels, max_batch)
    elif tuple(clean.shape) != (images.shape[0],):
        raise ValueError(f"clean correctness must be ({images.shape[0]},); got {tuple(clean.shape)}")
    stack = perturb_images(images, maps, positive, steps)  # (S, B, 3, H, W)
    per_call = max(1, max_batch // images.shape[0])  # whole steps per model call
    pred = torch.cat([_top1(model, part.flatten(0, 1), max_batch) for part in stack.split(per_call)])
    perturbed = (pred.view(stack.shape[0], -1) == labels[None]).float().T
    return torch.cat([clean.to(perturbed)[:, None], perturbed], dim=1)


def chefer_auc(curve: np.ndarray | torch.Tensor | Sequence[float]) -> np.ndarray | float:
    """Chefer's AUC: trapezoid over x = 0, 0.1, ..., 0.9 of [clean, acc@0.1, ..., acc@0.9] x 100.

    `curve` has last axis 10 (fractions in [0, 1]); leading axes are kept. Maximum 90.
    """
    c = _curve(curve)
    out = np.trapezoid(c, x=np.asarray(CURVE_X), axis=-1) * 100.0
    return float(out) if np.ndim(out) == 0 else out


def re_auc(curve: np.ndarray | torch.Tensor | Sequence[float]) -> np.ndarray | float:
    """Re's AUC: trapezoid (unit spacing) of acc@0.1, ..., acc@0.9 divided by 8; the clean point is unused.

    `curve` has last axis 10 ([clean, 9 steps], the clean entry is ignored). Maximum 1.
    """
    c = _curve(curve)
    out = np.trapezoid(c[..., 1:], axis=-1) / 8.0
    return float(out) if np.ndim(out) == 0 else out


def _curve(curve: np.ndarray | torch.Tensor | Sequence[float]) -> np.ndarray:
    c = curve.detach().cpu().double().numpy() if isinstance(curve, torch.Tensor) else np.asarray(curve, float)
    if c.ndim == 0 or c.shape[-1] != len(CURVE_X):
        raise ValueError(
            f"an AUC needs the {len(CURVE_X)}-point curve [clean, acc@0.1, ..., acc@0.9]; got shape {c.shape}"
        )
    if not np.isfinite(c).all() or (c < 0).any() or (c > 1).any():
        raise ValueError("curve values must be accuracies (fractions) in [0, 1]")
    return c


@dataclass(frozen=True)
class PerturbationResult:
    """Per-image correctness of one perturbation test, with the settings that produced it."""

    correct: torch.Tensor  # (B, 10): [clean, acc@0.1, ..., acc@0.9] in {0, 1}
    positive: bool
    explained: str  # "pred" or "target"

    @property
    def test(self) -> str:
        return "positive" if self.positive else "negative"

    def curve(self) -> np.ndarray:
        """Mean accuracy per point over the batch (fractions), shape (10,)."""
        return self.correct.double().mean(dim=0).cpu().numpy()


def perturbation_test(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    maps: torch.Tensor,
    labels: torch.Tensor,
    *,
    positive: bool,
    explained: Explained,
    max_batch: int = 256,
) -> PerturbationResult:
    """`perturbation_correctness` at the protocol's steps, recording test and explained class."""
    if explained not in EXPLAINED_CLASSES:
        raise ValueError(f"explained must be one of {EXPLAINED_CLASSES}, got {explained!r}")
    correct = perturbation_correctness(model, images, maps, labels, positive, PERTURBATION_STEPS, max_batch)
    return PerturbationResult(correct, positive, explained)


def explanation_target(explained: Explained, labels: torch.Tensor) -> torch.Tensor | None:
    """The explainer's target: None (it explains its predicted class) for "pred", the labels for "target"."""
    if explained == "pred":
        return None
    if explained == "target":
        return labels
    raise ValueError(f"explained must be one of {EXPLAINED_CLASSES}, got {explained!r}")
