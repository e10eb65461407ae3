"""Where the attack starts to bite: the first radius whose plain degradation interval is above 0."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.bite import bite_onset_table, degradation
from tests.test_claims_radius import _rows


def _with_positive_curves(rows: pd.DataFrame, rise: dict[float, float], seed: int = 0) -> pd.DataFrame:
    """Add positive-perturbation curves (10 accuracies): the attacked map's deletion leaves the model `rise[r]`
    more accurate at every step (a worse map: positive AUC is lower-is-better)."""
    rng = np.random.default_rng(seed)
    curves = []
    for radius in rows["radius_255"]:
        level = np.clip(0.3 + rise.get(float(radius), 0.0) + rng.normal(0, 0.05), 0, 1)
        curves.append([1.0] + [float(level)] * 9)
    return rows.assign(positive_pred=curves)


def test_the_onset_is_the_first_radius_whose_interval_is_above_zero():
    rows = _rows({2.0: 0.0, 8.0: 0.2, 32.0: 0.3}, {2.0: 0.0, 8.0: 0.0, 32.0: 0.0})
    table = bite_onset_table(rows, ["rollout"])
    assert table.loc[0, "mIoU"].startswith("8/255: +")
    assert table.loc[0, "pixel_accuracy"].startswith("8/255: +")


def test_an_attack_that_never_hurts_says_none_up_to_the_largest_radius():
    rows = _rows({4.0: 0.0, 16.0: 0.0}, {4.0: 0.0, 16.0: 0.0})
    table = bite_onset_table(rows, ["rollout"])
    assert table.loc[0, "mIoU"].startswith("none up to 16/255: ")
    d, lo, hi = degradation(rows, "rollout", "mIoU", 16.0)
    assert d == 0 and lo == 0 and hi == 0


def test_a_lower_is_better_metric_rising_under_attack_is_a_degradation():
    rows = _with_positive_curves(_rows({8.0: 0.0}, {8.0: 0.0}), {8.0: 0.3})
    d, lo, _ = degradation(rows, "rollout", "positive_auc_chefer", 8.0)
    assert d > 20 and lo > 0  # x100 AUC units: 0.3 higher accuracy over 0.9 of the x axis = +27
    assert bite_onset_table(rows, ["rollout"]).loc[0, "positive_auc_chefer"].startswith("8/255: +")


def test_metrics_the_rows_do_not_have_are_left_out():
    table = bite_onset_table(_rows({8.0: 0.2}, {8.0: 0.0}), ["rollout"])
    assert "negative_auc_chefer" not in table.columns and "topk_overlap" in table.columns
