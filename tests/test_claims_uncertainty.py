"""The bootstrap interval of a relation claim's delta: consistent with the tables, paired, honest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.claims.uncertainty import _aggregate, _per_item, delta_interval
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
            stats = {"correct": 1000 * q, "labeled": 1000.0, "inter_bg": 500 * q, "union_bg": 600.0,
                     "inter_fg": fg * q, "union_fg": float(fg), "ap": q}
            curve = [1.0, *np.clip(np.linspace(q, 0.1, 9) + rng.normal(0, 0.05, 9), 0, 1)]
            rows.append({"item_id": f"i{i:03d}", "method": "rollout", "dds": dds, "radius_255": 8.0,
                         "pred": 1, "label": 1, "clean_pred": 1, **stats, "topk_overlap": q,
                         "positive_pred": [1.0 - c if k else 1.0 for k, c in enumerate(curve)],
                         "negative_pred": curve})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("metric", "convention"), [
    ("pixel_accuracy", "percent"), ("mIoU", "percent"), ("mAP", "percent"),
    ("negative_auc_pred", "chefer_trapz_x100"), ("positive_auc_pred", "re_trapz_div8"),
    ("topk_overlap", "fraction"),
])
def test_the_full_sample_reproduces_the_tables(metric, convention):
    rows = _rows()
    claim = _claim(metric=metric, convention=convention)
    group = rows[rows["dds"] == "carlini"].sort_values("item_id")
    values, kind = _per_item(claim, group)
    full = _aggregate(claim, np.ones((1, len(group))), values, kind)[0]
    if metric in ("pixel_accuracy", "mIoU", "mAP"):
        expected = segmentation_table(rows).set_index("dds").loc["carlini", metric]
    elif metric == "topk_overlap":
        expected = faithfulness_table(rows).set_index("dds").loc["carlini", metric]
    else:
        column = {"chefer_trapz_x100": "_auc_chefer", "re_trapz_div8": "_auc_re"}[convention]
        expected = perturbation_table(rows).set_index("dds").loc["carlini", metric.split("_")[0] + column]
    assert full == pytest.approx(expected, rel=1e-12)


def test_interval_separates_a_real_effect_from_none():
    claim = _claim(metric="mIoU")
    lo, hi = delta_interval(claim, _rows(shift=0.1))
    assert 0 < lo < hi  # a 10-point shift on 40 images is far beyond the noise
    lo, hi = delta_interval(claim, _rows(shift=0.0))
    assert lo < 0 < hi


def test_interval_is_deterministic_and_needs_paired_rows():
    claim = _claim(metric="mAP")
    assert delta_interval(claim, _rows()) == delta_interval(claim, _rows())
    rows = _rows()
    with pytest.raises(LookupError, match="same images"):
        delta_interval(claim, rows.drop(index=rows.index[rows["dds"] == "carlini"][0]))
    assert delta_interval(_claim(kind="value", reported=1.0, relation=None), rows) is None
