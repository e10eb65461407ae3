"""95% bootstrap intervals over images for the report: of each table cell, of DDS minus plain, and of a
method minus a baseline map.

Each resampled dataset (images drawn with replacement, `RESAMPLES` times) is scored exactly as the
tables score the full one: segmentation from summed per-image counts, a perturbation AUC as the
mean of per-image AUCs (the AUC of the mean curve, the AUC being linear in the curve; so are the
insertion/deletion and ROAD AUCs), top-k overlap, max-sensitivity and prediction columns as means.
A delta interval resamples the same images with and without DDS (paired), as the claims' intervals
do (`harness.claims.uncertainty`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.metrics.registry import get_metric
from harness.metrics.segmentation import STAT_KEYS, segmentation_from_totals
from harness.runner.aggregate import EXTRA_CURVES

RESAMPLES = 1000
LEVEL = 0.95
SEGMENTATION = ("pixel_accuracy", "mIoU", "mAP")
NO_DDS = "none"
# The opt-in metrics' per-image curve columns: metric -> rows column.
EXTRA_CURVE_COLUMNS = {name: column for column, (name, _) in EXTRA_CURVES.items()}


def per_image(rows: pd.DataFrame, metric: str, explained: str = "pred") -> tuple[np.ndarray, str]:
    """(n, k) per-image values of `metric` and how they aggregate: 'seg' (summed counts) or 'mean'."""
    if metric in SEGMENTATION:
        return rows[list(STAT_KEYS)].to_numpy(dtype=float), "seg"
    if metric == "topk_overlap":
        return rows[["topk_overlap"]].to_numpy(dtype=float), "mean"
    if metric.endswith(("_auc_chefer", "_auc_re")):
        curves = np.asarray(rows[f"{metric.split('_', 1)[0]}_{explained}"].tolist(), dtype=float)
        return np.asarray(get_metric(metric).fn(curves), dtype=float).reshape(-1, 1), "mean"
    if metric in EXTRA_CURVE_COLUMNS:  # insertion/deletion, ROAD: the AUC of the mean curve = mean per-image AUC
        curves = np.asarray(rows[EXTRA_CURVE_COLUMNS[metric]].tolist(), dtype=float)
        return np.asarray(get_metric(metric).fn(curves), dtype=float).reshape(-1, 1), "mean"
    if metric == "max_sensitivity":
        return rows[["max_sensitivity"]].to_numpy(dtype=float), "mean"
    raise LookupError(f"no per-image form of {metric!r} for an interval")


def _scores(counts: np.ndarray, values: np.ndarray, kind: str, metric: str) -> np.ndarray:
    """The metric of each resampled dataset; counts (B, n) = how often each image is drawn."""
    if kind == "seg":
        return segmentation_from_totals(counts @ values, counts.sum(axis=1))[metric]
    defined = ~np.isnan(values[:, 0])  # an undefined value (top-k of a constant map) is left out of the mean
    n = counts @ defined.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (counts @ np.nan_to_num(values[:, 0])) / n


def _draws(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=RESAMPLES).astype(float)


def _percentiles(values: np.ndarray) -> tuple[float, float]:
    tail = 100.0 * (1.0 - LEVEL) / 2.0
    if np.isnan(values).all():
        return float("nan"), float("nan")
    lo, hi = np.nanpercentile(values, [tail, 100.0 - tail])
    return float(lo), float(hi)


def interval(rows: pd.DataFrame, metric: str, explained: str = "pred", seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of `metric` over the images of `rows` (one table cell)."""
    values, kind = per_image(rows, metric, explained)
    return _percentiles(_scores(_draws(len(values), seed), values, kind, metric))


def cell_intervals(
    rows: pd.DataFrame, metrics: tuple[str, ...], attacked_only: bool = False, explained: str = "pred"
) -> pd.DataFrame:
    """method, dds, radius_255 and `<metric>_lo`, `<metric>_hi` for every cell of a table (radius > 0 only
    when `attacked_only`, as the faithfulness table); `explained` = the perturbation curves' class mode."""
    out = []
    selected = rows[rows["radius_255"] > 0] if attacked_only else rows
    for (method, dds, radius), group in selected.groupby(["method", "dds", "radius_255"], sort=True):
        entry: dict = {"method": method, "dds": dds, "radius_255": radius}
        for metric in metrics:
            entry[f"{metric}_lo"], entry[f"{metric}_hi"] = interval(group, metric, explained)
        out.append(entry)
    return pd.DataFrame(out)


def delta(
    rows: pd.DataFrame, metric: str, method: str, variant: str, radius_255: float, seed: int = 0
) -> tuple[float, float, float, int]:
    """(delta, lo, hi, n images) of `metric` with DDS `variant` minus without, paired over the same images."""
    sel = rows[(rows["method"] == method) & (rows["radius_255"] == radius_255)]
    a, b = sel[sel["dds"] == variant], sel[sel["dds"] == NO_DDS]
    if a.empty or sorted(a["item_id"]) != sorted(b["item_id"]):
        raise LookupError(f"{method}: the {variant} and {NO_DDS} rows at {radius_255}/255 cover different images")
    return paired_difference(a, b, metric, seed=seed)


def paired_difference(
    a: pd.DataFrame, b: pd.DataFrame, metric: str, explained: str = "pred", seed: int = 0
) -> tuple[float, float, float, int]:
    """(metric of rows `a` minus of rows `b`, its 95% interval, n images): both scored as the tables score
    them, the interval from resampling the same images for both (paired). `a` and `b` must cover the same
    images (`item_id`)."""
    a, b = a.set_index("item_id").sort_index(), b.set_index("item_id").sort_index()
    if a.empty or not a.index.equals(b.index):
        raise LookupError("the two sets of rows cover different images")
    va, kind = per_image(a, metric, explained)
    vb, _ = per_image(b, metric, explained)
    n = len(va)
    full = np.ones((1, n))
    point = float(_scores(full, va, kind, metric)[0] - _scores(full, vb, kind, metric)[0])
    counts = _draws(n, seed)
    lo, hi = _percentiles(_scores(counts, va, kind, metric) - _scores(counts, vb, kind, metric))
    return point, lo, hi, n
