"""Segmentation metrics of ImageNet-Segmentation as Chefer's evaluation computes them (docs/PROTOCOL.md 6).

Per image, `segmentation_stats` returns additive counts and the image's AP; `aggregate_segmentation`
sums the counts over the dataset. All three metrics are reported in percent:

- pixel accuracy: dataset-summed correct pixels / dataset-summed pixels (micro average);
- mIoU: mean over the two classes {background, foreground} of dataset-summed intersections over
  dataset-summed unions; a class whose summed union is 0 scores IoU 0 (Chefer divides by
  ``eps + union``), it is not dropped from the mean;
- mAP: mean over images of the per-image average precision of the pooled scores [1 - map, map]
  against the one-hot mask [gt == 0, gt == 1] (sklearn's `average_precision_score`, which Chefer calls;
  computed here by `average_precision`, equal to it to rounding: tests/test_metrics_segmentation.py);
  an AP without positives counts as 0 (Chefer: NaN -> 0).

Chefer's conventions reproduced here:
- the map is min-max normalised first (idempotent for maps already in [0, 1] with min 0 and max 1);
  a constant map normalises to NaN in Chefer's code, whose NaN entries are then zeroed: every pixel
  is predicted background and every AP score is 0. A constant map is treated exactly so here;
- foreground is predicted where map > mean(map) (strictly greater; ties with the mean are background).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch

STAT_KEYS = ("correct", "labeled", "inter_bg", "union_bg", "inter_fg", "union_fg", "ap")


def _normalised(map_: np.ndarray) -> np.ndarray | None:
    """Chefer's min-max normalisation in float32; None for a constant map (NaN in Chefer's code)."""
    m = np.asarray(map_, dtype=np.float32)
    lo, hi = m.min(), m.max()
    if hi == lo:
        return None
    return (m - lo) / (hi - lo)


def _check_mask(mask: np.ndarray) -> np.ndarray:
    gt = np.asarray(mask)
    if gt.size == 0:
        raise ValueError("mask is empty")
    values = np.unique(gt)
    if not np.isin(values, (0, 1)).all():
        raise ValueError(f"mask must be binary (0 = background, 1 = foreground); found values {values[:10].tolist()}")
    return gt.astype(np.int64)


def average_precision(truth: np.ndarray, scores: np.ndarray) -> float:
    """sklearn's `average_precision_score` for binary `truth` (1-D, {0, 1}): the sum over the distinct
    score thresholds, descending, of (R_k - R_(k-1)) * P_k; 0 when `truth` has no positive (as sklearn
    returns now; older versions gave NaN, which Chefer's code turns into 0).

    The same arithmetic as sklearn's, without its per-call input validation, which costs three times the
    computation itself on a 64 x 64 map (the analogue experiments score tens of thousands of maps).
    """
    truth = np.asarray(truth).ravel().astype(bool)
    scores = np.asarray(scores).ravel()
    if truth.shape != scores.shape:
        raise ValueError(f"{truth.size} labels for {scores.size} scores")
    order = np.argsort(scores, kind="stable")[::-1]  # descending; ties are one threshold below
    ranked, hits = scores[order], truth[order]
    last = np.r_[np.flatnonzero(np.diff(ranked)), ranked.size - 1]  # last index of each distinct score
    tps = np.cumsum(hits, dtype=np.float64)[last]
    if tps.size == 0 or tps[-1] == 0:
        return 0.0
    precision = tps / (last + 1.0)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def image_ap(map01: np.ndarray, mask: np.ndarray) -> float:
    """AP of the pooled scores [1 - map, map] against the one-hot mask [gt==0, gt==1].

    `map01` is min-max normalised first; a constant map gives all-zero scores (Chefer's NaN -> 0),
    so its AP is the positive rate of the pooled labels (0.5 for a binary mask).
    """
    gt = _check_mask(mask).ravel()
    m = _normalised(map01)
    if m is None:
        scores = np.zeros(2 * gt.size, dtype=np.float32)
    else:
        flat = m.ravel()
        scores = np.concatenate([1.0 - flat, flat])
    return average_precision(np.concatenate([gt == 0, gt == 1]), scores)


def segmentation_stats(map01: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """Additive stats of one map (H, W) against a binary mask (H, W); keys are `STAT_KEYS`.

    The map is min-max normalised (see the module docstring), foreground = map > map.mean().
    """
    if tuple(map01.shape) != tuple(mask.shape) or map01.ndim != 2:
        raise ValueError(f"map shape {tuple(map01.shape)} and mask shape {tuple(mask.shape)} must be equal (H, W)")
    m = map01.detach().float().cpu().numpy()
    if not np.isfinite(m).all():
        raise ValueError("explanation map contains NaN or infinite values")
    gt = _check_mask(mask.detach().cpu().numpy())
    norm = _normalised(m)
    pred = np.zeros_like(gt) if norm is None else (norm > norm.mean(dtype=np.float32)).astype(np.int64)
    stats = {"correct": float((pred == gt).sum()), "labeled": float(gt.size)}
    for cls, tag in ((0, "bg"), (1, "fg")):
        p, g = pred == cls, gt == cls
        stats[f"inter_{tag}"] = float((p & g).sum())
        stats[f"union_{tag}"] = float((p | g).sum())
    stats["ap"] = image_ap(m, gt)
    return stats


def aggregate_segmentation(rows: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Dataset-level pixel_accuracy, mIoU and mAP (percent) from per-image stats (`STAT_KEYS`)."""
    rows = list(rows)
    if not rows:
        raise ValueError("no rows to aggregate")
    missing = set(STAT_KEYS) - set(rows[0])
    if missing:
        raise KeyError(f"segmentation rows lack the stats {sorted(missing)}")
    totals = np.array([[float(r[k]) for k in STAT_KEYS] for r in rows]).sum(axis=0)
    return {k: float(v) for k, v in segmentation_from_totals(totals, len(rows)).items()}


def segmentation_from_totals(totals: np.ndarray, n_images: float | np.ndarray) -> dict[str, np.ndarray]:
    """pixel_accuracy, mIoU, mAP (percent) from `STAT_KEYS` totals (..., 7) over `n_images` images.

    Leading axes are kept, so many resampled datasets (e.g. a bootstrap) aggregate at once.
    """
    tot = {k: totals[..., i] for i, k in enumerate(STAT_KEYS)}
    ious = [
        np.where(tot[f"union_{t}"] > 0, tot[f"inter_{t}"] / np.maximum(tot[f"union_{t}"], 1e-300), 0.0)
        for t in ("bg", "fg")
    ]
    return {
        "pixel_accuracy": 100.0 * tot["correct"] / tot["labeled"],
        "mIoU": 100.0 * (ious[0] + ious[1]) / 2.0,
        "mAP": 100.0 * tot["ap"] / n_images,
    }
