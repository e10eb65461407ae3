"""Plots of a run: one figure per metric, every method a small multiple, a line per DDS setting with
its 95% interval over images as a band.

Titles are drawn inside the image, in a fixed layout that leaves room for the wrapped title, the panels'
labels and the legend, so no title is cut off wherever the page shows it; figures are 1200 px wide, a
screen's width.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd

from harness.metrics.registry import get_metric

PLOTTED = {
    "segmentation": ("pixel_accuracy", "mIoU", "mAP"),
    "perturbation": ("positive_auc_chefer", "negative_auc_chefer"),
    "faithfulness": ("topk_overlap",),
    # The opt-in tasks' metrics; a run has the columns of the tasks it ran (`plotted`).
    "extra_metrics": ("insertion_auc", "deletion_auc", "road_morf_auc", "road_lerf_auc", "max_sensitivity"),
}
TITLES = {
    "segmentation": "Segmentation of the object by the explanation map",
    "perturbation": "Perturbation test (pixels of the clean image deleted in the map's order)",
    "faithfulness": "FViT faithfulness: clean vs attacked map",
    "extra_metrics": "Metrics beyond the papers (opt-in tasks)",
}
WIDTH_IN, DPI = 12.0, 100  # 1200 px


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only), imported at the first figure: a run process that
    draws none (a shard other than 0, a killed run) does not pay matplotlib's import."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def fixed_grid(
    plt,
    rows: int,
    cols: int,
    title_lines: int,
    *,
    sharey: bool = False,
    panel_in: float = 2.9,
    gap_in: float = 0.55,
    top_pad_in: float = 0.25,
    bottom_in: float = 0.85,
    left_in: float = 0.65,
    wspace: float = 0.06,
):
    """(figure, axes (rows, cols), height in inches) of a 1200 px wide figure in a fixed layout (inches): the
    title's lines on top, the x label and the legend below, the panels between; what a layout engine would
    find, without its extra passes over every tick (half a figure's time)."""
    top_in, right_in = top_pad_in + 0.22 * title_lines, 0.15
    height = top_in + bottom_in + rows * panel_in + (rows - 1) * gap_in
    fig = plt.figure(figsize=(WIDTH_IN, height))
    axes = fig.subplots(
        rows,
        cols,
        squeeze=False,
        sharey=sharey,
        gridspec_kw={
            "left": left_in / WIDTH_IN,
            "right": 1 - right_in / WIDTH_IN,
            "top": 1 - top_in / height,
            "bottom": bottom_in / height,
            "hspace": gap_in / panel_in,
            "wspace": wspace,
        },
    )
    return fig, axes, height


def plotted(name: str, table: pd.DataFrame) -> tuple[str, ...]:
    """The metrics of table `name` that are plotted and given intervals: PLOTTED's, where `table` has them."""
    return tuple(m for m in PLOTTED.get(name, ()) if m in table.columns)


def figure_title(table: str, metric: str) -> str:
    spec = get_metric(metric)
    direction = "higher is better" if spec.higher_is_better else "lower is better"
    return f"{TITLES[table]}: {metric} [{spec.unit}], {direction}; against the PGD radius"


def metric_vs_radius(
    table: pd.DataFrame, metric: str, path: Path, title: str, intervals: pd.DataFrame | None = None
) -> Path:
    """One panel per method: `metric` against radius (1/255 pixel units), a line per DDS setting, the
    95% interval (columns `<metric>_lo`, `<metric>_hi` of `intervals`) as a band around it."""
    from matplotlib.patches import Patch

    plt = pyplot()
    methods = sorted(table["method"].unique())
    cols = min(4, len(methods))
    rows = (len(methods) + cols - 1) // cols
    title_lines = textwrap.wrap(title, 110)
    fig, axes, height = fixed_grid(plt, rows, cols, len(title_lines), sharey=True)
    spec = get_metric(metric)
    if intervals is not None and not intervals.empty:
        table = table.merge(intervals, on=["method", "dds", "radius_255"], how="left")
    for ax, method in zip(axes.flat, methods, strict=False):
        sub = table[table["method"] == method]
        for dds in sorted(sub["dds"].unique(), key=lambda d: (d != "none", d)):  # plain first, in black
            line = sub[sub["dds"] == dds].sort_values("radius_255")
            label = "no DDS" if dds == "none" else f"DDS {dds}"
            style = {"color": "black"} if dds == "none" else {}
            (drawn,) = ax.plot(line["radius_255"], line[metric], marker="o", ms=3.5, label=label, **style)
            if f"{metric}_lo" in line:
                ax.fill_between(
                    line["radius_255"],
                    line[f"{metric}_lo"],
                    line[f"{metric}_hi"],
                    color=drawn.get_color(),
                    alpha=0.2,
                    linewidth=0,
                )
        ax.set_title(method, fontsize=10)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    for ax in axes.flat[len(methods) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("PGD radius (1/255, [0,1] pixel units x 255)", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{metric} [{spec.unit}]", fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if intervals is not None and not intervals.empty:
        handles.append(Patch(color="gray", alpha=0.25))
        labels.append("band: 95% bootstrap interval over images")
    fig.legend(
        handles,
        labels,
        loc="lower center",
        bbox_to_anchor=(0.5, 0.04 / height),
        ncols=len(labels),
        fontsize=9,
        frameon=False,
    )
    fig.suptitle("\n".join(title_lines), fontsize=11, y=1 - 0.1 / height, va="top")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_tables(
    tables: dict[str, pd.DataFrame], out_dir: Path, intervals: dict[str, pd.DataFrame] | None = None
) -> list[tuple[str, Path]]:
    """(title, PNG path) of every plot the tables support; `intervals` by table name (optional)."""
    out = []
    intervals = intervals or {}
    for name in PLOTTED:
        table = tables.get(name)
        if table is None or table.empty:
            continue
        if name == "perturbation" and "explained" in table:
            table = table[table["explained"] == "pred"]
        for metric in plotted(name, table):
            title = figure_title(name, metric)
            path = metric_vs_radius(table, metric, out_dir / f"{metric}_vs_radius.png", title, intervals.get(name))
            out.append((title, path))
    return out
