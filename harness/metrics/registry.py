"""The one registry of metrics: name -> function, unit/convention and direction.

Reports and claims look units and conventions up here. A unit string is also the `convention`
column of shared/reference/reported_results.csv where that file has the metric:
"percent" (0-100), "chefer_trapz_x100" (Chefer's perturbation AUC, max 90), "re_trapz_div8"
(Re's perturbation AUC, max 1), "fraction" (0-1). Added beyond the papers: "prob_trapz" (area under a
probability curve over [0, 1], max 1) and "relative_l2" (a map change relative to the clean map's norm).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.metrics import faithfulness, insertion_deletion, perturbation, sensitivity
from harness.metrics.segmentation import aggregate_segmentation


@dataclass(frozen=True)
class MetricSpec:
    """A metric: `fn` computes it from `takes`; `unit` names its scale and convention."""

    name: str
    fn: Callable[..., Any]
    unit: str
    higher_is_better: bool
    takes: str
    description: str


def _segmentation(key: str) -> Callable[[Iterable[Mapping[str, float]]], float]:
    def metric(rows: Iterable[Mapping[str, float]]) -> float:
        return aggregate_segmentation(rows)[key]

    metric.__name__ = key
    return metric


_SEG_ROWS = "per-image rows of harness.metrics.segmentation.segmentation_stats"
_CURVE = "10-point accuracy curve [clean, acc@0.1, ..., acc@0.9] (fractions)"
_PROB_CURVE = "(n+1)-point softmax probability of the explained class at fractions 0, 1/n, ..., 1"
_ROAD_CURVE = "10-point ROAD accuracy curve [clean, acc@0.1, ..., acc@0.9] (fractions, imputed pixels)"

_SPECS = (
    MetricSpec(
        "pixel_accuracy",
        _segmentation("pixel_accuracy"),
        "percent",
        True,
        _SEG_ROWS,
        "dataset-summed correct pixels / pixels; fg where map > map mean",
    ),
    MetricSpec(
        "mIoU",
        _segmentation("mIoU"),
        "percent",
        True,
        _SEG_ROWS,
        "mean over {bg, fg} of dataset-summed intersection / union",
    ),
    MetricSpec(
        "mAP",
        _segmentation("mAP"),
        "percent",
        True,
        _SEG_ROWS,
        "mean per-image AP of pooled [1 - map, map] vs one-hot mask",
    ),
    MetricSpec(
        "positive_auc_chefer",
        perturbation.chefer_auc,
        "chefer_trapz_x100",
        False,
        _CURVE,
        "positive perturbation (most relevant deleted first), Chefer's AUC",
    ),
    MetricSpec(
        "negative_auc_chefer",
        perturbation.chefer_auc,
        "chefer_trapz_x100",
        True,
        _CURVE,
        "negative perturbation (least relevant deleted first), Chefer's AUC",
    ),
    MetricSpec(
        "positive_auc_re",
        perturbation.re_auc,
        "re_trapz_div8",
        False,
        _CURVE,
        "positive perturbation (most relevant deleted first), Re's AUC",
    ),
    MetricSpec(
        "negative_auc_re",
        perturbation.re_auc,
        "re_trapz_div8",
        True,
        _CURVE,
        "negative perturbation (least relevant deleted first), Re's AUC",
    ),
    MetricSpec(
        "insertion_auc",
        insertion_deletion.curve_auc,
        "prob_trapz",
        True,
        _PROB_CURVE,
        "RISE insertion: clean pixels put back most relevant first onto a blurred image; trapezoid over [0, 1]",
    ),
    MetricSpec(
        "deletion_auc",
        insertion_deletion.curve_auc,
        "prob_trapz",
        False,
        _PROB_CURVE,
        "RISE deletion: most relevant pixels set to 0 first; trapezoid over [0, 1]",
    ),
    MetricSpec(
        "road_morf_auc",
        perturbation.re_auc,
        "re_trapz_div8",
        False,
        _ROAD_CURVE,
        "ROAD, most relevant first, removed by noisy linear imputation (Rong et al. 2022); Re's AUC",
    ),
    MetricSpec(
        "road_lerf_auc",
        perturbation.re_auc,
        "re_trapz_div8",
        True,
        _ROAD_CURVE,
        "ROAD, least relevant first, removed by noisy linear imputation (Rong et al. 2022); Re's AUC",
    ),
    MetricSpec(
        "max_sensitivity",
        sensitivity.max_relative_change,
        "relative_l2",
        False,
        "clean maps (B, ...) and maps of uniform L-inf perturbations (S, B, ...)",
        "Yeh et al. 2019 max over samples of ||map(y) - map(x)||_2 / ||map(x)||_2 (Monte Carlo, lower bound)",
    ),
    MetricSpec(
        "topk_overlap",
        faithfulness.topk_overlap,
        "fraction",
        True,
        "two batches of maps and k",
        "FViT's top-k index overlap ratio |T_k(a) & T_k(b)| / k per pair",
    ),
    MetricSpec(
        "prediction_agreement",
        faithfulness.prediction_agreement,
        "fraction",
        True,
        "two batches of logits (or class indices)",
        "top-1 classes agree (1) or not (0), per pair",
    ),
    MetricSpec(
        "prediction_tv_distance",
        faithfulness.prediction_tv_distance,
        "fraction",
        False,
        "two batches of logits",
        "total-variation distance between softmax distributions, per pair",
    ),
)

METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in _SPECS}


def get_metric(name: str) -> MetricSpec:
    """The spec registered as `name`; a KeyError lists the registered names."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; registered: {', '.join(sorted(METRICS))}") from None


def names() -> list[str]:
    return sorted(METRICS)


def unit(name: str) -> str:
    return get_metric(name).unit


def higher_is_better(name: str) -> bool:
    return get_metric(name).higher_is_better


def resolve(metric: str, convention: str) -> MetricSpec:
    """The spec for a (metric, convention) pair as reported_results.csv names them.

    A trailing "_pred"/"_target" (the explained class) is dropped; "positive_auc" with
    "chefer_trapz_x100" resolves to "positive_auc_chefer", with "re_trapz_div8" to "positive_auc_re".
    """
    base = metric.removesuffix("_pred").removesuffix("_target")
    for spec in METRICS.values():
        if spec.unit == convention and spec.name in (base, f"{base}_chefer", f"{base}_re"):
            return spec
    known = ", ".join(f"{s.name} ({s.unit})" for s in METRICS.values())
    raise KeyError(f"no metric {metric!r} in convention {convention!r}; registered: {known}")
