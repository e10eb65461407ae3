"""The claims along the radius axis: per claim group, form and metric, each method's effect (DDS minus plain, or
the drop with minus without DDS) against the PGD radius with its 95% interval, and the attack's bite on the
plain method beside it. Input: the long table of `harness.claims.verdicts.radius_rows`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd

from harness.report.plots import DPI, fixed_grid, pyplot

TITLE = (
    "Claims along the radius axis: effect of DDS (error bars: 95% paired-bootstrap interval; filled = held at that "
    "radius) and the attack's bite on the plain method (its degradation, positive = worse), against the PGD radius"
)


def _panels(curves: pd.DataFrame) -> list[tuple[str, pd.DataFrame, str, str]]:
    """(title, rows, y column, low/high prefix) per panel: an effect panel per (group, form, metric), then a bite
    panel per metric (the bite does not depend on the form)."""
    out = []
    for (group, form, metric), rows in curves.groupby(["group", "form", "metric"], sort=True):
        out.append((f"{group} {form.removeprefix('relation ')}: {metric}", rows, "delta", "delta"))
    level = curves[curves["form"] == "relation (level)"]
    for metric, rows in level.groupby("metric", sort=True):
        out.append((f"bite: {metric}", rows, "attack_degrades_plain_by", "bite"))
    return out


def radius_curve_figure(curves: pd.DataFrame, path: Path, dds: str | None = None) -> Path | None:
    """Draw the radius curves of the non-control claims of `curves` (of DDS variant `dds`, default: the most
    frequent one) to `path`; None when there is nothing to draw (no claim judged at two radii or more)."""
    claims = curves[curves["control"].fillna("") == ""]
    if claims.empty or claims["radius_255"].nunique() < 2:
        return None
    dds = dds or claims["dds"].mode().iloc[0]
    claims = claims[claims["dds"] == dds]
    panels = _panels(claims)
    plt = pyplot()
    cols = 4
    rows = (len(panels) + cols - 1) // cols
    title_lines = textwrap.wrap(f"{TITLE} (DDS {dds}).", 115)
    fig, axes, height = fixed_grid(
        plt,
        rows,
        cols,
        len(title_lines),
        panel_in=2.5,
        gap_in=0.75,
        top_pad_in=0.35,
        bottom_in=0.95,
        left_in=0.6,
        wspace=0.3,
    )
    methods = sorted(claims["method"].unique())
    radii = sorted(claims["radius_255"].unique())
    colours = {m: f"C{k % 10}" for k, m in enumerate(methods)}
    for ax, (title, sub, column, prefix) in zip(axes.flat, panels, strict=False):
        for k, method in enumerate(methods):
            line = sub[sub["method"] == method].sort_values("radius_255")
            if column == "attack_degrades_plain_by":  # one bite per (method, radius): the level rows carry it
                line = line.drop_duplicates("radius_255")
            if line.empty:
                continue
            x = line["radius_255"].map(radii.index) + (k - (len(methods) - 1) / 2) * 0.06
            y = line[column].astype(float)
            err = [y - line[f"{prefix}_lo"].astype(float), line[f"{prefix}_hi"].astype(float) - y]
            ax.errorbar(x, y, yerr=err, color=colours[method], lw=1, capsize=1.5, ms=0, label=method)
            held = (line["outcome_at_radius"] == "held").to_numpy() if column == "delta" else None
            face = [colours[method] if h else "white" for h in held] if held is not None else colours[method]
            ax.scatter(x, y, s=14, facecolors=face, edgecolors=colours[method], zorder=3)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_title("\n".join(textwrap.wrap(title, 40)), fontsize=8)
        ax.set_xticks(range(len(radii)), [f"{r:g}" for r in radii])
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("PGD radius (1/255 pixel units)", fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 0.04 / height), ncols=4, fontsize=8.5)
    fig.suptitle("\n".join(title_lines), fontsize=10.5, y=1 - 0.1 / height, va="top")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
