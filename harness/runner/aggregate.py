"""Per-item rows -> dataset-level tables (pandas)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.metrics.insertion_deletion import curve_auc
from harness.metrics.perturbation import chefer_auc, re_auc
from harness.metrics.segmentation import aggregate_segmentation

GROUP = ["method", "dds", "radius_255"]


def _top1(group: pd.DataFrame) -> float:
    """Fraction of labelled images (label >= 0) predicted as their label; NaN when none is labelled
    (ImageNet-Segmentation has no labels: its top-1 is undefined, not 0)."""
    labelled = group[group["label"] >= 0]
    return float("nan") if labelled.empty else float((labelled["pred"] == labelled["label"]).mean())


def segmentation_table(rows: pd.DataFrame) -> pd.DataFrame:
    """pixel_accuracy, mIoU, mAP (percent) per (method, dds, radius), with accuracy under attack.

    Prediction columns (here and in every table) are fractions in [0, 1], as the claims' top-1 accuracy.
    """
    out = []
    for (method, variant, radius), group in rows.groupby(GROUP, sort=True):
        out.append(
            {
                "method": method,
                "dds": variant,
                "radius_255": radius,
                **aggregate_segmentation(group.to_dict("records")),
                "top1_under_attack": _top1(group),
                "prediction_flipped": float((group["pred"] != group["clean_pred"]).mean()),
                "smoothed_top1_under_attack": _smoothed_top1(group),
                "n_images": len(group),
            }
        )
    return pd.DataFrame(out)


def perturbation_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Positive/negative perturbation AUCs per (method, dds, radius, explained class), both conventions.

    Chefer AUC: trapezoid over x = 0..0.9 of [clean acc, acc@0.1..0.9] x 100 (max 90);
    Re AUC: trapezoid of acc@0.1..0.9 / 8 (max 1). Positive: lower is better; negative: higher.
    """
    out = []
    modes = [c.split("_", 1)[1] for c in rows.columns if c.startswith("positive_")]
    for (method, variant, radius), group in rows.groupby(GROUP, sort=True):
        for mode in modes:
            entry = {"method": method, "dds": variant, "radius_255": radius, "explained": mode}
            for direction in ("positive", "negative"):
                curve = np.asarray(group[f"{direction}_{mode}"].tolist(), dtype=float).mean(axis=0)
                entry[f"{direction}_auc_chefer"] = float(chefer_auc(curve))
                entry[f"{direction}_auc_re"] = float(re_auc(curve))
            entry["clean_top1"] = float(curve[0])
            entry["n_images"] = len(group)
            out.append(entry)
    return pd.DataFrame(out)


def _smoothed_top1(group: pd.DataFrame) -> float:
    """Fraction of images whose smoothed prediction (DDS rows) equals the label; NaN for plain rows."""
    if "smoothed_pred" not in group or group["smoothed_pred"].isna().all():
        return float("nan")
    return float((group["smoothed_pred"] == group["label"]).mean())


def _smoothed(group: pd.DataFrame) -> dict[str, float]:
    if "smoothed_pred" not in group or group["smoothed_pred"].isna().all():
        return {"smoothed_prediction_agreement": float("nan")}
    return {"smoothed_prediction_agreement": float((group["smoothed_pred"] == group["clean_pred"]).mean())}


def faithfulness_table(rows: pd.DataFrame) -> pd.DataFrame:
    """FViT faithfulness under attack: mean top-k overlap (clean vs attacked map) and prediction agreement.

    topk_overlap averages the pairs where it is defined; topk_undefined counts the pairs excluded because
    a map was constant (no top-k). smoothed_prediction_agreement: DDS rows' smoothed prediction (majority
    vote over the purified samples) on the attacked image vs the plain model's clean prediction.
    """
    attacked = rows[rows["radius_255"] > 0]
    out = []
    for (method, variant, radius), group in attacked.groupby(GROUP, sort=True):
        out.append(
            {
                "method": method,
                "dds": variant,
                "radius_255": radius,
                "topk_overlap": float(group["topk_overlap"].astype(float).mean()),  # NaN/None excluded
                "topk_undefined": int(group["topk_overlap"].isna().sum()),
                "prediction_agreement": float((group["pred"] == group["clean_pred"]).mean()),
                **_smoothed(group),
                "n_images": len(group),
            }
        )
    return pd.DataFrame(out)


EXTRA_CURVES = {
    "insertion": ("insertion_auc", curve_auc),
    "deletion": ("deletion_auc", curve_auc),
    "road_morf": ("road_morf_auc", re_auc),
    "road_lerf": ("road_lerf_auc", re_auc),
}


def extra_metrics_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The opt-in metrics per (method, dds, radius): insertion/deletion AUC (prob_trapz, max 1), ROAD
    MoRF/LeRF AUC (re_trapz_div8, max 1) of the mean curve, mean max-sensitivity (relative_l2)."""
    out = []
    for (method, variant, radius), group in rows.groupby(GROUP, sort=True):
        entry = {"method": method, "dds": variant, "radius_255": radius}
        for column, (name, auc) in EXTRA_CURVES.items():
            if column in group.columns:
                entry[name] = float(auc(np.asarray(group[column].tolist(), dtype=float).mean(axis=0)))
        if "max_sensitivity" in group.columns:
            entry["max_sensitivity"] = float(group["max_sensitivity"].astype(float).mean())
        entry["n_images"] = len(group)
        out.append(entry)
    return pd.DataFrame(out)


def all_tables(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Every table the rows support: segmentation, perturbation, extra_metrics, faithfulness."""
    tables = {}
    if "ap" in rows.columns:
        tables["segmentation"] = segmentation_table(rows)
    if any(c.startswith("positive_") for c in rows.columns):
        tables["perturbation"] = perturbation_table(rows)
    if any(c in rows.columns for c in (*EXTRA_CURVES, "max_sensitivity")):
        tables["extra_metrics"] = extra_metrics_table(rows)
    if (rows["radius_255"] > 0).any():
        tables["faithfulness"] = faithfulness_table(rows)
    return tables
