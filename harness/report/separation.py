"""Can the world tell an explanation from a content-free map? Each method vs every baseline map on clean images.

On the clean images (radius 0, no DDS) a method's margin over a baseline map is its metric minus the baseline
map's (sign-flipped for lower-is-better metrics, so positive = better), with a 95% paired-bootstrap interval
over the same images (`harness.report.intervals.paired_difference`). A method *beats every baseline map* on a
metric when the lower bound of its margin over each baseline map is above 0. Methods the papers report as weak
(`WEAK_METHODS`) are expected to fail this and are named as such.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from harness.metrics.registry import higher_is_better
from harness.report import intervals as ci

NO_DDS = "none"
# The metrics a world must separate methods from baseline maps on: mIoU (percent) and both perturbation AUCs
# (Chefer's convention, x100; positive: lower is better, negative: higher is better).
SEPARATION_METRICS = ("mIoU", "positive_auc_chefer", "negative_auc_chefer")
# Methods the papers report as weak, with where: they are expected not to beat the baseline maps.
WEAK_METHODS = {
    "lrp": "full LRP is the weakest method in Chefer et al. (CVPR 2021) Table 2 (ImageNet-Segmentation pixel "
    "accuracy 51.09, mIoU 32.89) and in their perturbation tests",
}


def margins_over_baselines(
    rows: pd.DataFrame, method: str, baselines: Sequence[str], metric: str
) -> list[tuple[str, float, float, float]]:
    """[(baseline map, margin, lo, hi)] of `method` over each baseline map on the clean, plain rows."""
    clean = rows[(rows["radius_255"] == 0) & (rows["dds"] == NO_DDS)]
    sign = 1 if higher_is_better(metric) else -1
    out = []
    for base in baselines:
        d, lo, hi, _ = ci.paired_difference(clean[clean["method"] == method], clean[clean["method"] == base], metric)
        lo, hi = sorted((sign * lo, sign * hi))
        out.append((base, sign * d, lo, hi))
    return out


def separation_table(
    rows: pd.DataFrame, methods: Sequence[str], baselines: Sequence[str], metrics: Sequence[str] = SEPARATION_METRICS
) -> pd.DataFrame:
    """One row per method: per metric the smallest margin over the baseline maps with its interval (text), whether
    the method beats every baseline map on every metric, and the papers' word where they call it weak."""
    out = []
    for method in methods:
        entry: dict = {"method": method}
        beats = True
        for metric in metrics:
            margins = margins_over_baselines(rows, method, baselines, metric)
            base, d, lo, hi = min(margins, key=lambda m: m[2])
            entry[f"{metric} margin (worst baseline)"] = f"{d:+.3g} [{lo:+.3g}, {hi:+.3g}] vs {base}"
            beats &= all(m[2] > 0 for m in margins)
        entry["beats every baseline map"] = "yes" if beats else "no"
        entry["papers"] = "weak: " + WEAK_METHODS[method] if method in WEAK_METHODS else ""
        out.append(entry)
    return pd.DataFrame(out)
