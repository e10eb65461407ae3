"""Write result tables as CSV and as markdown with their units and conventions stated."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

SEGMENTATION_CONVENTIONS = (
    "radius_255: L-infinity PGD radius in [0,1] pixel units times 255 (PGD: 10 steps of radius/5, random start, "
    "cross-entropy on the predicted class; 0 = clean).",
    "dds: `none` = plain explanation; otherwise the DDS variant, noise sigma in [0,1] pixel units.",
    "pixel_accuracy, mIoU, mAP: percent; map thresholded at its own mean; pixel accuracy micro-averaged, mIoU "
    "over {bg, fg} of dataset-summed intersections / unions, mAP = mean per-image AP of [1-map, map].",
    "top1_under_attack: fraction (0..1) of images whose (attacked) prediction equals the label "
    "(n/a: the dataset has no labels, as ImageNet-Segmentation); "
    "prediction_flipped: fraction (0..1) whose prediction changed from the clean one (both: the plain "
    "classifier's prediction; every prediction column of every table is a fraction).",
    "smoothed_top1_under_attack: DDS rows only, fraction whose smoothed prediction (majority vote of the classes "
    "predicted on the purified samples, ties to the lowest class) equals the label.",
)


RADIUS = (
    "radius_255: L-infinity attack radius in [0,1] pixel units times 255 (0 = clean image); the attack is "
    "named above (the papers': PGD, 10 steps of radius/5 from a random start, maximising cross-entropy of the "
    "predicted class)."
)
DDS = "dds: `none` = the plain explanation; otherwise the DDS variant (noise sigma in [0,1] pixel units, see above)."
CONVENTIONS: dict[str, tuple[str, ...]] = {
    "segmentation": (RADIUS, DDS, *SEGMENTATION_CONVENTIONS[2:]),
    "perturbation": (
        RADIUS,
        DDS,
        "explained: `pred` = the class predicted on the (attacked) input; `target` = the label.",
        "Pixels of the CLEAN image are set to 0 (all channels) in the order of the (attacked, smoothed) map: "
        "positive = most relevant first (lower AUC is better), negative = least relevant first (higher is better); "
        "score = top-1 correctness against the label at 10%..90% deleted.",
        "*_auc_chefer: Chefer's AUC = trapezoid over x = 0, 0.1..0.9 of [clean acc, acc@10%..90%] x 100 (max 90).",
        "*_auc_re: Re's AUC = trapezoid (unit spacing) of acc@10%..90% / 8, no clean point (max 1).",
        "clean_top1: fraction (0..1) of clean, unperturbed images classified correctly (the curves' first point).",
    ),
    "faithfulness": (
        RADIUS,
        DDS,
        "topk_overlap: FViT's |T_k(map clean) & T_k(map attacked)| / k, k = the run's `topk` (fraction of the pixels "
        "of the map at image resolution), mean over images (fraction, higher = more stable).",
        "topk_undefined: pairs left out of topk_overlap because a map is constant (no top-k; count of images).",
        "prediction_agreement: fraction (0..1) of images whose attacked prediction equals the clean one; "
        "smoothed_prediction_agreement: DDS rows only, the smoothed prediction (majority vote over the purified "
        "samples) on the attacked image vs the clean prediction (fraction).",
    ),
    "extra_metrics": (
        RADIUS,
        DDS,
        "Opt-in metrics beyond the papers (tasks insertion_deletion, road, max_sensitivity; a column is there only "
        "when its task ran). Every one uses the row's map of the class predicted on the (attacked) input, with the "
        "row's DDS variant (the perturbation test's `pred` map), whatever explain_classes says.",
        "insertion_auc, deletion_auc (RISE, Petsiuk et al. 2018; unit prob_trapz, 0..1): the CLEAN image's pixels "
        "ranked by the map (most relevant first, ties in row-major order); at p = 0, 0.1, ..., 1 (11 points) the "
        "softmax probability of the class predicted on the (attacked) input, with the top int(H*W*p) pixels set to "
        "0 in every channel (deletion; lower is better) or put back onto a Gaussian-blurred copy of the clean "
        "image, kernel 11 px, std 5 px (insertion; higher is better). AUC = trapezoid over p in [0, 1] of the mean "
        "curve over images (= the mean per-image AUC).",
        "road_morf_auc, road_lerf_auc (ROAD, Rong et al. 2022, without retraining; unit re_trapz_div8, 0..1): the "
        "CLEAN image's pixels removed in the map's order, most relevant first (MoRF; lower is better) or least "
        "relevant first (LeRF; higher is better), each removed pixel imputed as the weighted mean of its 8 "
        "neighbours (1/6 direct, 1/12 diagonal; one sparse linear system per image and channel) plus Gaussian "
        "noise of std 0.01 in [0,1] pixel units (seeded by the run seed), clipped to [0, 1]; score = top-1 "
        "correctness against the label at [clean, 10%..90% removed]; AUC = Re's trapezoid (unit spacing) of the "
        "mean accuracy at 10%..90% / 8 (the clean point unused; max 1). Needs labelled images.",
        "max_sensitivity (Yeh et al. 2019; unit relative_l2, a ratio, lower is better): per image, the max over 8 "
        "points y drawn uniformly from the L-infinity ball of radius 2/255 ([0,1] pixel units; y clipped to "
        "[0, 1]) around the row's (attacked) input x of ||map(y) - map(x)||_2 / ||map(x)||_2 (Frobenius norms of "
        "the [0,1]-normalised maps at image resolution; a zero map(x) divides by 1). Every copy explains the class "
        "predicted on x (under DDS, every purified sample explains that class, with the unit's DDS noise seed); "
        "the draws are seeded by the run seed. A Monte Carlo lower bound of the max; the table gives the mean "
        "over images.",
        "n_images: images in the cell (count).",
    ),
}


def markdown_table(df: pd.DataFrame, floatfmt: str = ".2f") -> str:
    """Markdown of `df`; missing values (NaN / None: e.g. top-1 on unlabelled data) print as n/a."""
    return df.astype(object).where(df.notna(), None).to_markdown(index=False, floatfmt=floatfmt, missingval="n/a")


def write_table(
    df: pd.DataFrame,
    out_dir: Path,
    stem: str,
    title: str,
    conventions: Sequence[str],
    context: Sequence[str] = (),
    floatfmt: str = ".2f",
) -> tuple[Path, Path]:
    """Write `stem`.csv and `stem`.md (title, context lines, table, conventions) to `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.md"
    df.to_csv(csv_path, index=False)
    lines = [f"# {title}", ""]
    lines += [f"- {c}" for c in context]
    lines += ["", markdown_table(df, floatfmt), "", "Conventions:", ""]
    lines += [f"- {c}" for c in conventions]
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path
