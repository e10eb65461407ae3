"""Sampling uncertainty of a relation claim: a paired bootstrap over images of delta = dds - none.

A relation claim is judged on its point estimate (docs/PROTOCOL.md section 1 states directions); the
interval says whether that estimate is more than sampling noise on the images at hand. Both
settings are resampled with the same image draws (paired), and each resampled dataset is scored
exactly as the tables score the full one: segmentation from summed per-image counts, perturbation
AUCs as the mean of per-image AUCs (equal to the AUC of the mean curve, the AUCs being linear),
top-k overlap as a mean.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.claims.registry import Claim
from harness.metrics.registry import resolve
from harness.metrics.segmentation import STAT_KEYS, segmentation_from_totals

SEGMENTATION_METRICS = ("pixel_accuracy", "mIoU", "mAP")
NO_DDS = "none"


def _per_item(claim: Claim, rows: pd.DataFrame) -> tuple[np.ndarray, str]:
    """(n, k) per-image values of the claim's metric, and how they aggregate ('seg' or 'mean')."""
    if claim.metric in SEGMENTATION_METRICS:
        return rows[list(STAT_KEYS)].to_numpy(dtype=float), "seg"
    if claim.metric == "topk_overlap":
        return rows[["topk_overlap"]].to_numpy(dtype=float), "mean"
    if "_auc" in claim.metric:
        spec = resolve(claim.metric, claim.convention)
        explained = "target" if claim.metric.endswith("_target") else "pred"
        direction = "positive" if claim.metric.startswith("positive") else "negative"
        curves = np.asarray(rows[f"{direction}_{explained}"].tolist(), dtype=float)
        return np.asarray(spec.fn(curves), dtype=float).reshape(-1, 1), "mean"
    raise LookupError(f"no per-image decomposition for metric {claim.metric!r}")


def _aggregate(claim: Claim, counts: np.ndarray, values: np.ndarray, kind: str) -> np.ndarray:
    """The metric of each resampled dataset; counts (B, n) = how often each image is drawn."""
    n = counts.sum(axis=1)
    totals = counts @ values
    if kind == "seg":
        return segmentation_from_totals(totals, n)[claim.metric]
    return totals[:, 0] / n


def delta_interval(
    claim: Claim, rows: pd.DataFrame, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of delta (claim's DDS variant minus none) over the claim's images.

    None for value claims and for metrics measured on other tables (cost).
    """
    if claim.kind != "relation":
        return None
    sel = rows[(rows["method"] == claim.method) & (rows["radius_255"] == claim.radius_255)]
    with_dds = sel[sel["dds"] == claim.dds].set_index("item_id").sort_index()
    without = sel[sel["dds"] == NO_DDS].set_index("item_id").sort_index()
    if with_dds.empty or not with_dds.index.equals(without.index):
        raise LookupError(f"claim {claim.id}: the {claim.dds} and {NO_DDS} rows do not cover the same images")
    try:
        a, kind = _per_item(claim, with_dds)
    except LookupError:
        return None
    b, _ = _per_item(claim, without)
    rng = np.random.default_rng(seed)
    n = len(with_dds)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(float)
    deltas = _aggregate(claim, counts, a, kind) - _aggregate(claim, counts, b, kind)
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(deltas, [tail, 100.0 - tail])
    return float(lo), float(hi)
