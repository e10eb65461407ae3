"""The report of one run folder: summary, headline with intervals, tables, figures, gallery, conventions.

`write_run_report` reads what the run wrote (its rows and tables) and, clearly labelled as coming from
elsewhere, the claims suite's verdicts (only when their run's settings match this one's) and the cost
table of `fvit-bench cost`.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pandas as pd

from harness.report import intervals as ci
from harness.report.gallery import RADIUS_255, MapCollector, compute_gallery, from_collector, render_gallery
from harness.report.html import Report, build_report, verdict_summary
from harness.report.plots import plot_tables, plotted
from harness.report.tables import CONVENTIONS, DDS, RADIUS
from harness.runner.config import ExperimentConfig

NO_DDS = "none"
GALLERY_METHOD = "transformer_attribution"
HEADINGS = {
    "segmentation": "Segmentation under attack",
    "perturbation": "Perturbation tests",
    "faithfulness": "Faithfulness under attack",
    "extra_metrics": "Metrics beyond the papers (insertion/deletion, ROAD, max-sensitivity)",
}
# The headline's metrics: those the protocol's claims are about (docs/PROTOCOL.md section 1).
HEADLINE = {
    "segmentation": ("pixel_accuracy", "mIoU", "mAP"),
    "perturbation": ("positive_auc_chefer", "negative_auc_chefer"),
    "faithfulness": ("topk_overlap",),
}
INTERVAL_NOTE = (
    "95% interval: percentile bootstrap over the run's images (1,000 resamples), each resample scored as the "
    "table scores the full set; a delta's interval resamples the same images with and without DDS (paired). "
    "In the headline, better / worse = the delta's interval lies wholly on the metric's better / worse side of 0; "
    "within noise = it contains 0."
)
BASELINE_NOTE = (
    "Over the best baseline map (a table after each table, and a line in the headline): the baseline maps are "
    "random_map (random patch scores seeded by the image), centre_map (one fixed centre bump) and constant_map "
    "(no content), the chance level of every metric. For each explanation method's row and each plotted metric: "
    "the method's value minus that of the best baseline map of the same cell (same DDS setting, radius and "
    "explained class; best = highest for a higher-is-better metric, lowest otherwise), sign-flipped for "
    "lower-is-better metrics so that positive = better than every baseline map, in the metric's unit (percentage "
    "points for percent metrics), with a paired 95% bootstrap interval over the same images; `vs` names that "
    "baseline map; n/a where no baseline map has a value (the constant map has no top-k). above / below = the "
    "interval lies wholly above / below 0, within noise = it contains 0. A stable map is not a faithful one: the "
    "centre map is the same for every input, so its top-k overlap is 1 by construction and every method falls "
    "below it there."
)
FILES = {
    "segmentation.md": "segmentation table with its context (also .csv)",
    "perturbation.md": "perturbation AUCs, Chefer's and Re's conventions (also .csv)",
    "faithfulness.md": "top-k overlap and prediction agreement under attack (also .csv)",
    "extra_metrics.md": "the opt-in tasks' insertion/deletion, ROAD and max-sensitivity (also .csv)",
    "rows.sqlite": "one row per (image, method, DDS variant, radius): the durable, resumable store",
    "config.json": "the exact configuration of the run",
    "verdicts.md": "the claims this run measures, judged on its own images (also .csv)",
    "figures": "the figures of this page (PNG)",
}


def code_commit() -> str:
    """The git commit of the code that wrote the report ('unknown' outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def headline_radius(cfg: ExperimentConfig) -> float | None:
    """The claims' radius 8/255 when the run has it, else its largest attack radius (None: no attack)."""
    attacked = [float(r) for r in cfg.radii_255 if float(r) > 0]
    if not attacked:
        return None
    return RADIUS_255 if RADIUS_255 in attacked else max(attacked)


def _better(metric: str, lo: float, hi: float) -> str:
    from harness.metrics.registry import get_metric

    sign = 1 if get_metric(metric).higher_is_better else -1
    if lo * sign > 0 and hi * sign > 0:
        return "better"
    if lo * sign < 0 and hi * sign < 0:
        return "worse"
    return "within noise"


def headline(
    cfg: ExperimentConfig, rows: pd.DataFrame, tables: dict[str, pd.DataFrame]
) -> tuple[list[str], pd.DataFrame | None]:
    """One sentence per (table, DDS variant) and a method x metric table of DDS minus plain [95% interval]."""
    radius = headline_radius(cfg)
    variants = [d.variant for d in cfg.dds]
    if radius is None or not variants:
        return ["No attacked radius or no DDS variant in this run: no with/without-DDS comparison to report."], None

    def measurable(metric: str) -> bool:  # the headline explains the predicted class ("pred" curves)
        return not metric.endswith(("_chefer", "_re")) or f"{metric.split('_', 1)[0]}_pred" in rows

    shown = {name: [m for m in metrics if measurable(m)] for name, metrics in HEADLINE.items() if name in tables}
    lines, grid = [], []
    for variant in variants:
        for method in explanation_methods(rows):
            entry = {"DDS": variant, "method": method}
            for metrics in shown.values():
                for metric in metrics:
                    d, lo, hi, _ = ci.delta(rows, metric, method, variant, radius)
                    entry[metric] = f"{d:+.3g} [{lo:+.3g}, {hi:+.3g}]"
                    entry[f"_{metric}"] = _better(metric, lo, hi)
            grid.append(entry)
        frame = pd.DataFrame([g for g in grid if g["DDS"] == variant])
        for name, metrics in shown.items():
            if not metrics:
                continue
            parts = []
            for metric in metrics:
                verdicts = frame[f"_{metric}"]
                counts = [
                    f"{kind} for {(verdicts == kind).sum()}"
                    + ("" if kind == "better" else f" ({', '.join(frame.loc[verdicts == kind, 'method'])})")
                    for kind in ("better", "worse", "within noise")
                    if (verdicts == kind).any()
                ]
                parts.append(f"{metric} {', '.join(counts)}")
            lines.append(
                f"{HEADINGS[name]}, DDS {variant} vs plain at PGD {radius:g}/255, {len(frame)} methods: "
                + "; ".join(parts)
                + "."
            )
    table = pd.DataFrame(grid)
    table = table[[c for c in table.columns if not c.startswith("_")]]
    return lines, table


def explanation_methods(rows: pd.DataFrame) -> list[str]:
    """The run's methods other than the baseline maps (all of them when the run has only baseline maps)."""
    from harness.explainers.registry import baseline_names

    methods = sorted(rows["method"].unique())
    return [m for m in methods if m not in baseline_names()] or methods


def baseline_margins(name: str, rows: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame | None:
    """Per explanation method's row of `table`: each plotted metric's margin over the best baseline map of the
    same cell (positive = better, in the metric's unit) with its paired 95% interval, as text, plus hidden
    `_<metric>` columns (above / below / within noise). None when the table has no baseline map or only those."""
    from harness.explainers.registry import baseline_names
    from harness.metrics.registry import higher_is_better

    base = set(baseline_names())
    present = set(table["method"])
    if not present & base or not present - base:
        return None
    keys = [k for k in ("dds", "radius_255", "explained") if k in table]
    baselines = table[table["method"].isin(base)]
    out = []
    for _, row in table[~table["method"].isin(base)].iterrows():
        cell = baselines[(baselines[keys] == row[keys]).all(axis=1)]
        sel = rows[(rows["dds"] == row["dds"]) & (rows["radius_255"] == row["radius_255"])]
        entry = {"method": row["method"], **{k: row[k] for k in keys}}
        for metric in plotted(name, table):
            sign = 1 if higher_is_better(metric) else -1
            known = cell[cell[metric].notna()]
            column = f"{metric} over best baseline"
            if known.empty or pd.isna(row[metric]):
                entry[column], entry[f"_{metric}"] = "n/a", "n/a"
                continue
            best = known.loc[(known[metric] * sign).idxmax(), "method"]
            d, lo, hi, _ = ci.paired_difference(
                sel[sel["method"] == row["method"]],
                sel[sel["method"] == best],
                metric,
                explained=row.get("explained", "pred"),
            )
            d, (lo, hi) = sign * d, sorted((sign * lo, sign * hi))
            entry[column] = f"{d:+.3g} [{lo:+.3g}, {hi:+.3g}] vs {best}"
            entry[f"_{metric}"] = "above" if lo > 0 else "below" if hi < 0 else "within noise"
        out.append(entry)
    return pd.DataFrame(out)


def baseline_lines(margins: dict[str, pd.DataFrame], radius: float) -> list[str]:
    """One sentence per table: at `radius`, for how many (method, DDS) rows each metric is above / below the
    best baseline map (interval wholly above / below 0) or within noise (perturbation: the predicted class)."""
    lines = []
    for name, frame in margins.items():
        sel = frame[frame["radius_255"] == radius]
        if "explained" in sel:
            sel = sel[sel["explained"] == "pred"]
        if sel.empty:
            continue
        parts = []
        label = sel["method"] + "/" + sel["dds"]
        for metric in [c[1:] for c in sel.columns if c.startswith("_")]:
            verdicts = sel[f"_{metric}"]
            counts = [
                f"{kind} for {(verdicts == kind).sum()}"
                + ("" if kind == "above" else f" ({', '.join(label[verdicts == kind])})")
                for kind in ("above", "below", "within noise", "n/a")
                if (verdicts == kind).any()
            ]
            parts.append(f"{metric} {', '.join(counts)}")
        if parts:
            where = f"at PGD {radius:g}/255" if radius > 0 else "on clean images"
            count = f"{len(sel)} method/DDS row{'' if len(sel) == 1 else 's'}"
            lines.append(f"{HEADINGS[name]} vs the best baseline map {where}, {count}: " + "; ".join(parts) + ".")
    return lines


def _with_interval_columns(table: pd.DataFrame, cells: pd.DataFrame, metrics: tuple[str, ...]) -> pd.DataFrame:
    keys = [k for k in ("method", "dds", "radius_255", "explained") if k in table and k in cells]
    merged = table.merge(cells, on=keys, how="left")
    out = table.copy()
    for metric in metrics:
        lo, hi = merged[f"{metric}_lo"], merged[f"{metric}_hi"]
        column = [f"[{a:.3g}, {b:.3g}]" if pd.notna(a) else "" for a, b in zip(lo, hi, strict=True)]
        out.insert(out.columns.get_loc(metric) + 1, f"{metric} 95% CI", column)
    return out


def _intervals(name: str, rows: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    metrics = plotted(name, table)
    if name == "perturbation":
        modes = table["explained"].unique() if "explained" in table else ["pred"]
        parts = [ci.cell_intervals(rows, metrics, explained=m).assign(explained=m) for m in modes]
        return pd.concat(parts, ignore_index=True)
    return ci.cell_intervals(rows, metrics, attacked_only=name == "faithfulness")


def _methods_text(rows: pd.DataFrame) -> str:
    methods = explanation_methods(rows)
    maps = sorted(set(rows["method"]) - set(methods))
    return ", ".join(methods) + (f"; baseline maps (chance level): {', '.join(maps)}" if maps else "")


def claims_grid(verdicts_csv: Path, cfg: ExperimentConfig) -> tuple[tuple[pd.DataFrame, str] | None, str]:
    """The claims suite's verdict grid, only for verdicts of a run with this run's settings (same config hash).

    Returns ((grid, where it comes from), "") or (None, why none is shown).
    """
    if not verdicts_csv.is_file():
        return None, (f"No claim verdicts at {verdicts_csv} (`pytest claims/` writes them); none are shown.")
    verdicts = pd.read_csv(verdicts_csv)
    if "config_hash" not in verdicts:
        return None, (
            f"Not shown: the verdicts in {verdicts_csv} do not name the run they come from (no "
            "config_hash column), so they cannot be matched with this run's settings."
        )
    mine = verdicts[verdicts["config_hash"].astype(str) == cfg.config_hash()]
    grid = verdict_summary(mine) if not mine.empty else None
    if grid is None:
        hashes = ", ".join(sorted(verdicts["config_hash"].dropna().astype(str).unique()))
        return None, (
            f"Not shown: the verdicts in {verdicts_csv} come from runs with other settings (config "
            f"hash {hashes}; this run {cfg.config_hash()})."
        )
    where = [f"config hash {cfg.config_hash()}"]
    for col, label in (("n_images", "images"), ("commit", "commit"), ("date", "date")):
        if col in mine:
            where.append(f"{label} {', '.join(sorted(mine[col].dropna().astype(str).unique()))}")
    return (
        grid,
        f"Verdicts of the claims suite ({verdicts_csv}), from a run with this run's settings: "
        + "; ".join(where)
        + ".",
    ), ""


def _claims(
    cfg: ExperimentConfig, out_dir: Path, rows: pd.DataFrame, claims_dir: Path
) -> tuple[tuple[pd.DataFrame, str] | None, str]:
    """The grid of the claims this run measures, judged on its own rows (written to verdicts.csv/.md), and a
    note on the claims suite's verdicts; the suite's grid stands in when the run measures no claim itself."""
    from harness.report.run_verdicts import STEM, run_summary, write_run_verdicts
    from harness.runner.aggregate import all_tables

    own = write_run_verdicts(cfg, out_dir, rows, all_tables(rows))
    suite, suite_note = claims_grid(claims_dir / "verdicts.csv", cfg)
    if own is None:
        return suite, " ".join(t for t in (run_summary(cfg, out_dir)[0], suite_note) if t)
    grid = verdict_summary(own)
    source = (
        run_summary(cfg, out_dir)[0] + f" Each verdict with its interval and reason: {STEM}.md. Control "
        "claims are listed there, not in the grid."
    )
    note = suite_note or (
        f"The claims suite's verdicts for these settings: {claims_dir / 'verdicts.md'} ({suite[1]})" if suite else ""
    )
    return (grid, source) if grid is not None else None, note


def _cost(cost_dir: Path) -> tuple[pd.DataFrame, list[str]] | None:
    csv = cost_dir / "cost.csv"
    if not csv.is_file():
        return None
    md = csv.with_suffix(".md")
    notes = [line[2:] for line in md.read_text().splitlines() if line.startswith("- ")] if md.is_file() else []
    when = dt.datetime.fromtimestamp(csv.stat().st_mtime, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return pd.read_csv(csv), [f"Not measured by this run: `fvit-bench cost` wrote {csv} at {when}.", *notes]


def gallery_items(cfg: ExperimentConfig, n: int) -> list:
    """The first `n` items of the run (fewer when the run has fewer)."""
    from harness.data.registry import get_dataset

    dataset = get_dataset(cfg.dataset, cfg.dataset_root)
    total = len(dataset) if cfg.limit is None else min(cfg.limit, len(dataset))
    return [dataset[i] for i in range(min(n, total))]


def gallery_method(cfg: ExperimentConfig) -> str:
    methods = cfg.resolved_methods()
    return GALLERY_METHOD if GALLERY_METHOD in methods else methods[0]


def write_gallery(
    cfg: ExperimentConfig, out_dir: Path, n: int, rows: pd.DataFrame, collector: MapCollector | None = None
) -> tuple[str, Path] | None:
    """The gallery's PNG for the first `n` images at PGD 8/255 (None when n is 0): the run's own maps when
    `collector` holds all of them, else computed for those images alone."""
    if n <= 0:
        return None
    from harness.data.embedded import CLASS_NAMES

    items = gallery_items(cfg, n)
    method, variants = gallery_method(cfg), [d.variant for d in cfg.dds]
    if collector is not None and collector.complete(variants):
        images, source = from_collector(collector, items, variants, rows), "maps, predictions and overlaps of this run"
    else:
        images, source = _recompute(cfg, items, method), "maps computed for these images alone (not stored by the run)"
    names = CLASS_NAMES if cfg.dataset == "embedded" else None
    path = render_gallery(
        images,
        method,
        variants,
        RADIUS_255,
        cfg.topk,
        out_dir / "figures" / "gallery.png",
        names,
        source=f"first {len(images)} images of the run; {source}",
    )
    caption = (
        f"The first {len(images)} images: clean and PGD {RADIUS_255:g}/255 input, mask, and {method}'s map "
        f"without and with each DDS variant ({', '.join(variants) or 'none in this run'}), clean and "
        f"attacked; {source}."
    )
    return caption, path


def _recompute(cfg: ExperimentConfig, items: list, method: str):
    from harness.explainers.registry import get_explainer
    from harness.models.zoo import load_classifier
    from harness.runner.experiment import load_denoiser_for
    from harness.smoothing.dds import smooth

    model = load_classifier(cfg.model, cfg.weights)
    explainers = {NO_DDS: get_explainer(method)}
    denoiser = load_denoiser_for(cfg)
    for spec in cfg.dds:
        explainers[spec.variant] = smooth(
            get_explainer(method),
            denoiser,
            spec.variant,
            sigma=spec.sigma,
            samples=spec.samples,
            fusion=spec.fusion,
            seed=cfg.seed,
            sample_target=spec.sample_target,
        )
    return compute_gallery(model, items, explainers, RADIUS_255, cfg.topk, cfg.attack_steps, cfg.seed)


SEPARATION_NOTE = (
    "Per method, on the clean images without DDS: its smallest margin over the baseline maps (random, centre, "
    "constant) on mIoU (percent) and the positive / negative perturbation AUCs (Chefer's x100 convention), positive "
    "= better [paired 95% interval], and whether the interval excludes 0 over every baseline map on every metric; "
    "`papers` names the methods the papers report as weak (harness/report/separation.py)."
)
BITE_NOTE = (
    "Per method without DDS and per metric: the first attacked radius (1/255 pixel units) at which the method is "
    "worse than on the clean images, its degradation (positive = worse, in the metric's unit: percent, Chefer's "
    "x100 AUC, 1 - top-k overlap as a fraction) with a paired 95% interval above 0 (each radius's own interval, not "
    "corrected for the radii tried); 'none up to R/255' gives the largest radius's. A robustness claim is vacuous "
    "where it does not bite (harness/report/bite.py)."
)


def _separation(rows: pd.DataFrame) -> pd.DataFrame | None:
    """The methods-vs-baseline-maps table on clean images (None unless the run has clean plain rows of both and
    the segmentation and perturbation columns)."""
    from harness.explainers.registry import baseline_names
    from harness.report.separation import separation_table

    clean = rows[(rows["radius_255"] == 0) & (rows["dds"] == "none")]
    present = set(clean["method"])
    baselines = [b for b in baseline_names() if b in present]
    methods = [m for m in explanation_methods(clean) if m not in baselines]
    needed = {"inter_fg", "positive_pred", "negative_pred"}
    if not baselines or not methods or not needed <= set(rows.columns):
        return None
    return separation_table(clean, methods, baselines)


def _bite_onset(rows: pd.DataFrame) -> pd.DataFrame | None:
    """The bite-onset table of the explanation methods (None unless the run has clean and attacked plain rows)."""
    from harness.explainers.registry import baseline_names
    from harness.report.bite import bite_onset_table

    plain = rows[rows["dds"] == "none"]
    if not ((plain["radius_255"] == 0).any() and (plain["radius_255"] > 0).any()):
        return None
    methods = [m for m in explanation_methods(plain) if m not in baseline_names()]
    return bite_onset_table(rows, methods) if methods else None


def write_run_report(
    cfg: ExperimentConfig,
    out_dir: Path,
    rows: pd.DataFrame,
    claims_dir: Path,
    cost_dir: Path,
    gallery: int = 4,
    collector: MapCollector | None = None,
) -> Path:
    """report.html/.md of a run folder; returns the HTML path."""
    from harness.runner.main import _sigma_text, attack_text

    frames = {name: pd.read_csv(out_dir / f"{name}.csv") for name in HEADINGS if (out_dir / f"{name}.csv").is_file()}
    cells = {name: _intervals(name, rows, frame) for name, frame in frames.items()}
    plot_cells = {
        name: c[c["explained"] == "pred"].drop(columns="explained") if "explained" in c else c
        for name, c in cells.items()
    }
    figures = plot_tables(frames, out_dir / "figures", plot_cells)
    lines, grid = headline(cfg, rows, frames)
    world = (
        "embedded world (synthetic shapes; an analogue, not the papers' data)"
        if cfg.dataset == "embedded"
        else cfg.dataset
    )
    dds = (
        "; ".join(
            f"{d.variant} (sigma {_sigma_text(d)}, samples {d.samples or 'the variant default'})" for d in cfg.dds
        )
        or "none"
    )
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    run = [
        (
            "Run",
            f"{cfg.name}: config hash {cfg.config_hash()}, seed {cfg.seed}; report written {now} by code at "
            f"commit {code_commit()}",
        ),
        ("Model", cfg.model + (f" ({cfg.weights})" if cfg.weights else "")),
        ("Data", f"{world}: {rows['item_id'].nunique()} images"),
        ("Methods", _methods_text(rows)),
        ("DDS variants", dds),
        (
            "Attack radii",
            ", ".join(f"{float(r):g}/255" for r in cfg.radii_255) + " (L-inf, [0,1] pixel units x 255; 0 = clean)",
        ),
        ("Attack", attack_text(cfg)),
        ("Tasks", ", ".join(cfg.tasks)),
    ]
    margins = {name: m for name, frame in frames.items() if (m := baseline_margins(name, rows, frame)) is not None}
    if margins:
        radius = headline_radius(cfg)
        lines += baseline_lines(margins, 0.0 if radius is None else radius)
    tables, conventions = {}, {"all": (RADIUS, DDS, INTERVAL_NOTE, *((BASELINE_NOTE,) if margins else ()))}
    for name, frame in frames.items():
        tables[name] = (HEADINGS[name], _with_interval_columns(frame, cells[name], plotted(name, frame)))
        conventions[name] = tuple(c for c in CONVENTIONS[name] if c not in (RADIUS, DDS))
        if name in margins:
            shown = margins[name][[c for c in margins[name].columns if not c.startswith("_")]]
            tables[f"{name}_vs_baselines"] = (f"{HEADINGS[name]}: margin over the best baseline map", shown)
            conventions[f"{name}_vs_baselines"] = (
                "Each method's margin over the best baseline map of its cell, positive = better, in the metric's "
                "unit [paired 95% interval]; see Conventions: Every table.",
            )
    for key, title, frame, note in (
        ("separation", "Methods vs baseline maps on clean images", _separation(rows), SEPARATION_NOTE),
        ("bite_onset", "Where the attack starts to bite (plain methods)", _bite_onset(rows), BITE_NOTE),
    ):
        if frame is not None:
            tables[key], conventions[key] = (title, frame), (note,)
    claims, claims_note = _claims(cfg, out_dir, rows, claims_dir)
    from harness.report.radius_curves import TITLE as RADIUS_TITLE
    from harness.report.run_verdicts import radius_figure

    curve = radius_figure(out_dir)
    if curve is not None:
        figures.append((RADIUS_TITLE, curve))
    radius = headline_radius(cfg)
    report = Report(
        title=f"fvit-bench report: {cfg.name}",
        run=run,
        headline=lines,
        headline_table=grid,
        headline_note=(
            f"Headline table: DDS minus plain at PGD {radius:g}/255 per method, with its paired 95% "
            "interval over images, in each metric's unit."
            if radius is not None
            else ""
        ),
        files=[(p, what) for p, what in FILES.items() if (out_dir / p).exists()],
        tables=tables,
        conventions=conventions,
        figures=figures,
        gallery=write_gallery(cfg, out_dir, gallery, rows, collector),
        claims=claims,
        claims_note=claims_note,
        cost=_cost(cost_dir),
    )
    html_path, _ = build_report(out_dir, report)
    return html_path
