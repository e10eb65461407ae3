"""Where the attack starts to bite: per method and metric, the first radius at which the plain method is worse.

A robustness claim is only decidable where its attack hurts the plain method (docs/PROTOCOL.md section 1). This
says, for the plain method (no DDS), from which attacked radius its degradation (clean minus attacked, sign-flipped
for lower-is-better metrics, so positive = worse) has a paired 95% interval above 0
(`harness.report.intervals.paired_difference`, the same images clean and attacked), or that it has none up to the
largest radius run. The perturbation AUCs of an attacked row delete pixels of the clean image ranked by the
attacked image's map, so clean and attacked AUCs compare directly; top-k overlap already compares the clean and
the attacked map, so its degradation is 1 - overlap.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from harness.metrics.registry import higher_is_better
from harness.report import intervals as ci

NO_DDS = "none"
# The robustness claims' metrics, as the report's intervals name them.
BITE_METRICS = ("pixel_accuracy", "mIoU", "mAP", "positive_auc_chefer", "negative_auc_chefer", "topk_overlap")
_NEEDS = {"pixel_accuracy": "correct", "mIoU": "inter_fg", "mAP": "ap", "topk_overlap": "topk_overlap"}


def degradation(rows: pd.DataFrame, method: str, metric: str, radius_255: float) -> tuple[float, float, float]:
    """(degradation, lo, hi) of the plain `method` at `radius_255` (1/255 pixel units) on `metric`: positive =
    the attack made it worse, with its paired 95% interval over the images."""
    plain = rows[(rows["dds"] == NO_DDS) & (rows["method"] == method)]
    attacked = plain[plain["radius_255"] == radius_255]
    if metric == "topk_overlap":  # undefined (NaN) for a constant map: left out
        attacked = attacked[attacked["topk_overlap"].notna()]
        d, lo, hi, _ = ci.paired_difference(attacked.assign(topk_overlap=1.0), attacked, metric)
        return d, lo, hi
    d, lo, hi, _ = ci.paired_difference(plain[plain["radius_255"] == 0], attacked, metric)
    if not higher_is_better(metric):
        d, lo, hi = -d, -hi, -lo
    return d, lo, hi


def _available(rows: pd.DataFrame, metric: str) -> bool:
    column = _NEEDS.get(metric, f"{metric.split('_', 1)[0]}_pred")
    return column in rows.columns and rows[column].notna().any()


def bite_onset_table(rows: pd.DataFrame, methods: Sequence[str], metrics: Sequence[str] = BITE_METRICS) -> pd.DataFrame:
    """One row per method; per metric the first attacked radius (1/255) where the plain method's degradation
    interval is above 0, as 'R/255: d [lo, hi]', or 'none up to R/255: d [lo, hi]' (the largest radius's)."""
    plain = rows[rows["dds"] == NO_DDS]
    radii = sorted(float(r) for r in plain["radius_255"].unique() if r > 0)
    metrics = [m for m in metrics if _available(rows, m)]
    out = []
    for method in methods:
        entry: dict = {"method": method}
        for metric in metrics:
            text = "no attacked radius"
            for r in radii:
                d, lo, hi = degradation(rows, method, metric, r)
                text = f"{d:+.3g} [{lo:+.3g}, {hi:+.3g}]"
                if lo > 0:
                    text = f"{r:g}/255: {text}"
                    break
            else:
                if radii:
                    text = f"none up to {radii[-1]:g}/255: {text}"
            entry[metric] = text
        out.append(entry)
    return pd.DataFrame(out)
