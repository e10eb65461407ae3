"""The metric registry: every protocol metric, its unit/convention and direction, in one place."""

import numpy as np
import pytest
import torch

from harness.metrics.registry import METRICS, get_metric, higher_is_better, names, resolve, unit
from harness.metrics.segmentation import aggregate_segmentation, segmentation_stats

REQUIRED = {
    "pixel_accuracy",
    "mIoU",
    "mAP",
    "positive_auc_chefer",
    "negative_auc_chefer",
    "positive_auc_re",
    "negative_auc_re",
    "topk_overlap",
    "prediction_agreement",
}
# the `convention` values of shared/reference/reported_results.csv, plus plain fractions
CONVENTIONS = {"percent", "chefer_trapz_x100", "re_trapz_div8", "fraction", "prob_trapz", "relative_l2"}


def test_registry_covers_the_protocol_metrics():
    assert set(names()) >= REQUIRED
    for spec in METRICS.values():
        assert callable(spec.fn) and spec.unit in CONVENTIONS and spec.description and spec.takes


def test_directions_and_units():
    assert not higher_is_better("positive_auc_chefer") and higher_is_better("negative_auc_chefer")
    assert not higher_is_better("positive_auc_re") and higher_is_better("negative_auc_re")
    assert unit("positive_auc_chefer") == "chefer_trapz_x100" and unit("negative_auc_re") == "re_trapz_div8"
    assert unit("mIoU") == "percent" and higher_is_better("topk_overlap")


def test_registered_functions_compute_the_metrics():
    rng = np.random.default_rng(0)
    rows = [
        segmentation_stats(torch.rand(6, 6), torch.from_numpy((rng.random((6, 6)) > 0.5).astype(np.uint8)))
        for _ in range(3)
    ]
    agg = aggregate_segmentation(rows)
    for key in ("pixel_accuracy", "mIoU", "mAP"):
        assert get_metric(key).fn(rows) == agg[key]
    curve = np.linspace(1, 0.1, 10)
    assert get_metric("positive_auc_chefer").fn(curve) == pytest.approx(100 * np.trapezoid(curve, dx=0.1))
    assert get_metric("negative_auc_re").fn(curve) == pytest.approx(np.trapezoid(curve[1:]) / 8)
    maps = torch.rand(2, 16)
    assert torch.equal(get_metric("topk_overlap").fn(maps, maps, 4), torch.ones(2))


def test_unknown_metric_lists_names():
    with pytest.raises(KeyError, match="mIoU"):
        get_metric("accuracy")


def test_resolve_reported_names_and_conventions():
    assert resolve("positive_auc_pred", "chefer_trapz_x100").name == "positive_auc_chefer"
    assert resolve("negative_auc_target", "chefer_trapz_x100").name == "negative_auc_chefer"
    assert resolve("negative_auc", "re_trapz_div8").name == "negative_auc_re"
    assert resolve("mIoU", "percent").name == "mIoU"
    with pytest.raises(KeyError, match="convention"):
        resolve("mIoU", "fraction")
