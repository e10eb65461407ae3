"""Plots of a run: each metric against the attack radius, with and without DDS, one panel per method."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from harness.metrics.registry import get_metric  # noqa: E402

PLOTTED = {
    "segmentation": ("pixel_accuracy", "mIoU", "mAP"),
    "perturbation": ("positive_auc_chefer", "negative_auc_chefer"),
    "faithfulness": ("topk_overlap",),
}


def metric_vs_radius(table: pd.DataFrame, metric: str, path: Path, title: str) -> Path:
    """One panel per method: `metric` against radius (1/255 pixel units), a line per DDS setting."""
    methods = sorted(table["method"].unique())
    cols = min(4, len(methods))
    rows = (len(methods) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False, sharey=True)
    spec = get_metric(metric)
    for ax, method in zip(axes.flat, methods, strict=False):
        sub = table[table["method"] == method]
        for dds, line in sub.groupby("dds"):
            line = line.sort_values("radius_255")
            ax.plot(line["radius_255"], line[metric], marker="o", label="no DDS" if dds == "none" else f"DDS {dds}")
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("PGD radius (/255, pixel units)", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(methods):]:
        ax.axis("off")
    direction = "higher is better" if spec.higher_is_better else "lower is better"
    axes[0, 0].set_ylabel(f"{metric} ({spec.unit})", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"{title}: {metric} [{spec.unit}], {direction}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_tables(tables: dict[str, pd.DataFrame], out_dir: Path) -> list[Path]:
    """Every plot the tables support, as PNG files in `out_dir`."""
    paths = []
    for name, metrics in PLOTTED.items():
        table = tables.get(name)
        if table is None or table.empty:
            continue
        if name == "perturbation":
            table = table[table["explained"] == "pred"]
        for metric in metrics:
            paths.append(metric_vs_radius(table, metric, out_dir / f"{metric}_vs_radius.png", name))
    return paths
