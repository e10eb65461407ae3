"""The bootstrap interval of a relation claim's delta: consistent with the tables, paired, honest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.claims.uncertainty import (
    aggregate,
    bootstrap_statistics,
    holm,
    one_sided_p,
    per_item,
    percentile_interval,
)
from harness.runner.aggregate import faithfulness_table, perturbation_table, segmentation_table
from tests.test_claims_registry import _claim


def _rows(n: int = 40, seed: int = 0, shift: float = 0.0) -> pd.DataFrame:
    """Per-image rows of one method at radius 8/255, without DDS and with carlini (better by `shift`)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        base = rng.uniform(0.2, 0.8)
        for dds, bonus in (("none", 0.0), ("carlini", shift)):
            q = float(np.clip(base + bonus + rng.normal(0, 0.05), 0, 1))
            fg = rng.integers(100, 400)
            stats = {
                "correct": 1000 * q,
                "labeled": 1000.0,
                "inter_bg": 500 * q,
                "union_bg": 600.0,
                "inter_fg": fg * q,
                "union_fg": float(fg),
                "ap": q,
            }
            curve = [1.0, *np.clip(np.linspace(q, 0.1, 9) + rng.normal(0, 0.05, 9), 0, 1)]
            rows.append(
                {
                    "item_id": f"i{i:03d}",
                    "method": "rollout",
                    "dds": dds,
                    "radius_255": 8.0,
                    "pred": 1,
                    "label": 1,
                    "clean_pred": 1,
                    **stats,
                    "topk_overlap": q,
                    "positive_pred": [1.0 - c if k else 1.0 for k, c in enumerate(curve)],
                    "negative_pred": curve,
                }
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("metric", "convention"),
    [
        ("pixel_accuracy", "percent"),
        ("mIoU", "percent"),
        ("mAP", "percent"),
        ("negative_auc_pred", "chefer_trapz_x100"),
        ("positive_auc_pred", "re_trapz_div8"),
        ("topk_overlap", "fraction"),
    ],
)
def test_the_full_sample_reproduces_the_tables(metric, convention):
    rows = _rows()
    claim = _claim(metric=metric, convention=convention)
    group = rows[rows["dds"] == "carlini"].sort_values("item_id")
    values, kind = per_item(claim.metric, claim.convention, group)
    full = aggregate(claim.metric, np.ones((1, len(group))), values, kind)[0]
    if metric in ("pixel_accuracy", "mIoU", "mAP"):
        expected = segmentation_table(rows).set_index("dds").loc["carlini", metric]
    elif metric == "topk_overlap":
        expected = faithfulness_table(rows).set_index("dds").loc["carlini", metric]
    else:
        column = {"chefer_trapz_x100": "_auc_chefer", "re_trapz_div8": "_auc_re"}[convention]
        expected = perturbation_table(rows).set_index("dds").loc["carlini", metric.split("_")[0] + column]
    assert full == pytest.approx(expected, rel=1e-12)


def test_replicates_are_paired_and_deterministic():
    rows = _rows(shift=0.1)
    frames = [rows[rows["dds"] == d].set_index("item_id").sort_index() for d in ("carlini", "none")]
    points, reps = bootstrap_statistics("mIoU", "percent", frames, resamples=500)
    again = bootstrap_statistics("mIoU", "percent", frames, resamples=500)
    assert np.array_equal(reps, again[1]) and reps.shape == (500, 2)
    lo, hi = percentile_interval(reps[:, 0] - reps[:, 1])
    assert 0 < lo < points[0] - points[1] < hi  # a 10-point shift on 40 images is far beyond the noise
    with pytest.raises(LookupError, match="same images"):
        bootstrap_statistics("mIoU", "percent", [frames[0], frames[1].iloc[1:]])


def test_nan_items_are_left_out_of_a_mean():
    values = np.array([[1.0], [np.nan], [0.0]])
    assert aggregate("topk_overlap", np.ones((1, 3)), values, "mean")[0] == 0.5
    assert np.isnan(aggregate("topk_overlap", np.ones((1, 1)), np.array([[np.nan]]), "mean")[0])


def test_one_sided_p_and_holm_by_hand():
    reps = np.random.default_rng(0).normal(0.0, 1.0, 100_000)
    assert one_sided_p(1.96, reps, +1) == pytest.approx(0.025, abs=1e-3)
    assert one_sided_p(1.96, reps, -1) == pytest.approx(0.975, abs=1e-3)
    assert one_sided_p(0.0, np.zeros(10), +1) == 1.0  # an identical pair shows nothing
    # Holm at 5%: sorted p 0.01 <= 0.05/3, 0.02 <= 0.05/2, 0.04 <= 0.05/1: all three rejected ...
    assert holm([0.04, 0.01, 0.02]) == [True, True, True]
    # ... but 0.03 > 0.05/2 stops the step-down: only the smallest survives.
    assert holm([0.03, 0.01, 0.04]) == [False, True, False]
