"""Sampling uncertainty of a claim: a paired bootstrap over images.

Every statistic a claim needs (a metric with or without DDS, clean or attacked) is computed on the
same resampled image sets, so differences of statistics are paired. Each resampled dataset is
scored exactly as the tables score the full one: segmentation from summed per-image counts,
perturbation AUCs as the mean of per-image AUCs (equal to the AUC of the mean curve, the AUCs
being linear), top-k overlap as a mean over the images whose maps have a top-k (degenerate,
constant maps give NaN and are left out of that mean).

The family-wise view is Holm-Bonferroni over one-sided p-values from the bootstrap's standard
error (normal approximation), named as such wherever it is shown.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm

from harness.metrics.registry import resolve
from harness.metrics.segmentation import STAT_KEYS, segmentation_from_totals

SEGMENTATION_METRICS = ("pixel_accuracy", "mIoU", "mAP")
RESAMPLES = 2000
LEVEL = 0.95


def per_item(metric: str, convention: str, rows: pd.DataFrame) -> tuple[np.ndarray, str]:
    """(n, k) per-image values of `metric` (NaN = not scorable), and how they aggregate ('seg' or 'mean')."""
    if metric in SEGMENTATION_METRICS:
        return rows[list(STAT_KEYS)].to_numpy(dtype=float), "seg"
    if metric == "topk_overlap":
        return rows[["topk_overlap"]].to_numpy(dtype=float), "mean"
    if "_auc" in metric:
        spec = resolve(metric, convention)
        explained = "target" if metric.endswith("_target") else "pred"
        direction = "positive" if metric.startswith("positive") else "negative"
        curves = np.asarray(rows[f"{direction}_{explained}"].tolist(), dtype=float)
        return np.asarray(spec.fn(curves), dtype=float).reshape(-1, 1), "mean"
    raise LookupError(f"no per-image decomposition for metric {metric!r}")


def aggregate(metric: str, counts: np.ndarray, values: np.ndarray, kind: str) -> np.ndarray:
    """The metric of each resampled dataset; counts (B, n) = how often each image is drawn."""
    if kind == "seg":
        return segmentation_from_totals(counts @ values, counts.sum(axis=1))[metric]
    finite = np.isfinite(values[:, 0])
    n = counts @ finite.astype(float)
    totals = counts @ np.where(finite, values[:, 0], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, totals / np.where(n > 0, n, 1.0), np.nan)


@functools.lru_cache(maxsize=16)
def resample_counts(n: int, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """(resamples, n) multinomial draw counts of a paired bootstrap over n images (read-only: the same
    draws serve every claim judged on n images, computed once)."""
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(float)
    counts.setflags(write=False)
    return counts


def bootstrap_statistics(
    metric: str, convention: str, frames: Sequence[pd.DataFrame], resamples: int = RESAMPLES, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Point values (k,) and paired bootstrap replicates (resamples, k) of `metric` on k row frames.

    Every frame must be indexed by the same item ids (one row per image): the same draws resample
    all of them, so any difference of columns is a paired statistic.
    """
    index = frames[0].index
    for frame in frames[1:]:
        if not frame.index.equals(index):
            raise LookupError("the settings compared do not cover the same images")
    n = len(index)
    if n == 0:
        raise LookupError("no images to resample")
    counts = resample_counts(n, resamples, seed)
    ones = np.ones((1, n))
    points, reps = [], []
    for frame in frames:
        values, kind = per_item(metric, convention, frame)
        points.append(aggregate(metric, ones, values, kind)[0])
        reps.append(aggregate(metric, counts, values, kind))
    return np.asarray(points, dtype=float), np.stack(reps, axis=1)


def percentile_interval(replicates: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of bootstrap replicates (NaN replicates dropped)."""
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return math.nan, math.nan
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(finite, [tail, 100.0 - tail])
    return float(lo), float(hi)


def one_sided_p(point: float, replicates: np.ndarray, side: int) -> float:
    """p-value of 'the effect is on `side` (+1 or -1) of 0', normal approximation with the bootstrap SE.

    A zero standard error gives p = 0 when the point lies on the claimed side, 1 otherwise.
    """
    finite = replicates[np.isfinite(replicates)]
    if not math.isfinite(point) or finite.size < 2:
        return 1.0
    se = float(np.std(finite, ddof=1))
    signed = side * point
    if se == 0.0:
        return 0.0 if signed > 0 else 1.0
    return float(norm.sf(signed / se))


def holm(p_values: Sequence[float], alpha: float = 1.0 - LEVEL) -> list[bool]:
    """Holm-Bonferroni step-down: which hypotheses are rejected (effect shown) at family-wise `alpha`."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    m = len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] > alpha / (m - rank):
            break
        rejected[i] = True
    return rejected


def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (in the input's order): hypothesis i is rejected by `holm` at alpha exactly when
    its adjusted p is <= alpha."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
