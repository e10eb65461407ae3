"""The claims a run's own settings measure, judged on the run's own rows.

A claim of claims/claims.yaml is measured by a run when the run has its world (and, at paper scale,
its model and dataset), its attack, its method, its DDS variant and its radius (with the clean
radius 0 a robustness claim compares with). Each such claim is judged exactly as the claims suite
judges it (`harness.claims.evaluate`), on this run's images and settings (its DDS sigma and samples,
which the table names), and written to verdicts.csv/.md in the run folder; the main command ends
with their counts and the report shows their grid.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.claims import build
from harness.claims.build import ADAPTIVE_ATTACK, ATTACK
from harness.claims.evaluate import evaluate
from harness.claims.paper import DATASET_OF
from harness.claims.registry import WORK_RELATION, Claim, load_claims
from harness.claims.verdicts import (
    CONVENTIONS,
    RADIUS_CONVENTIONS,
    outcome_counts,
    radius_rows,
    verdict_row,
    verdict_table,
)
from harness.report.tables import write_table
from harness.runner.config import ExperimentConfig

STEM = "verdicts"
CURVES_STEM = "verdicts_by_radius"
# Each table the run writes, and the metrics a claim may read from it.
METRICS_OF_TABLE = {
    "segmentation": ("pixel_accuracy", "mIoU", "mAP"),
    "perturbation": ("positive_auc_pred", "negative_auc_pred", "positive_auc_target", "negative_auc_target"),
    "faithfulness": ("topk_overlap",),
}


def run_attack(cfg: ExperimentConfig) -> str | None:
    """The claims' name of the run's attack (None: an attack no claim is about)."""
    if cfg.attack == "pgd" and cfg.attack_steps == 10:
        return ATTACK
    if cfg.attack == "adaptive" and cfg.adaptive_loss == "topk" and cfg.eot_samples == 4 and cfg.attack_steps == 10:
        return ADAPTIVE_ATTACK
    return None


def plugin_claims(methods: list[str], world: str) -> list[Claim]:
    """The PGD relation claims the registry states for every built-in method, stated for plug-in methods
    (`captum:...`, or one registered by the user) exactly as `harness.claims.build` states them for a built-in
    one: same claim, metric, relation, DDS variant and radius, with the identity and noise_only controls in the
    embedded world. Baseline maps have their own control claims; no adaptive claims (no differentiable form)."""
    from harness.explainers.registry import baseline_names

    plugins = [m for m in dict.fromkeys(methods) if m not in build.METHODS and m not in baseline_names()]
    out = []
    for method in plugins:
        for claim, metric, convention, relation, form in build.RELATIONS:
            dds = build.EMBEDDED_DDS if world == "embedded" else build.PAPER_DDS_OF_CLAIM[claim]
            out.append(Claim(**build._relation(world, claim, metric, convention, relation, form, method, dds)))
            if world != "embedded":
                continue
            for control, control_dds, control_methods, expect in build.CONTROLS:
                if control_methods == build.METHODS:
                    args = (claim, metric, convention, relation, form, method, control_dds, control, expect)
                    out.append(Claim(**build._relation(world, *args)))
    return out


def measured_claims(
    cfg: ExperimentConfig, rows: pd.DataFrame, tables: dict[str, pd.DataFrame], claims: list[Claim] | None = None
) -> list[Claim]:
    """The relation claims (controls included, cost claims excluded) whose setting the run has; with the default
    registry, plug-in methods' claims too (`plugin_claims`)."""
    world = "embedded" if cfg.dataset == "embedded" else "paper"
    attack = run_attack(cfg)
    metrics = {m for name, ms in METRICS_OF_TABLE.items() if name in tables for m in ms}
    settings = set(zip(rows["method"], rows["dds"], rows["radius_255"].astype(float), strict=True))
    if claims is None:
        claims = load_claims() + plugin_claims(list(rows["method"].unique()), world)
    found = []
    for c in claims:
        if c.world != world or c.kind != "relation" or c.relation == WORK_RELATION or c.attack != attack:
            continue
        if world == "paper" and (c.model != cfg.model or DATASET_OF.get(c.dataset, c.dataset) != cfg.dataset):
            continue
        needed = {
            (c.method, d, r) for d in (c.dds, "none") for r in ({c.radius_255, 0.0} if c.robustness else {c.radius_255})
        }
        if c.metric in metrics and needed <= settings:
            found.append(c)
    return found


def _judged(
    cfg: ExperimentConfig,
    rows: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
    claims: list[Claim] | None,
    resamples: int,
) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The verdict table of the claims this run measures and the long table of their radius curves (None, None
    when it measures none; curves None when no claim is a robustness claim)."""
    run = {"name": cfg.name, "config_hash": cfg.config_hash(), "n_images": int(rows["item_id"].nunique())}
    verdicts = [evaluate(c, {**tables, "rows": rows}, resamples) for c in measured_claims(cfg, rows, tables, claims)]
    if not verdicts:
        return None, None
    curves = [r for v in verdicts for r in radius_rows(v, run)]
    table = verdict_table([verdict_row(v, "judged", run=run) for v in verdicts])
    return table, pd.DataFrame(curves) if curves else None


def judge_run(
    cfg: ExperimentConfig,
    rows: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
    claims: list[Claim] | None = None,
    resamples: int = 2000,
) -> pd.DataFrame | None:
    """The verdict table of the claims this run measures (None when it measures none)."""
    return _judged(cfg, rows, tables, claims, resamples)[0]


def _context(cfg: ExperimentConfig, table: pd.DataFrame) -> list[str]:
    from harness.runner.main import _sigma_text

    header, control_lines = outcome_counts(table)
    dds = "; ".join(
        f"{d.variant}: sigma {_sigma_text(d)}, samples {d.samples or 'the variant default'}" for d in cfg.dds
    )
    return [
        f"Claims this run measures, judged on its own {int(table['n_images'].max())} images (run `{cfg.name}`, "
        f"config hash {cfg.config_hash()}; DDS {dds or 'none'}; 95% paired bootstrap): {header}.",
        *control_lines,
    ]


def _none_measured(cfg: ExperimentConfig) -> str:
    return (
        f"This run measures none of the claims of claims/claims.yaml: they need the papers' attack (PGD L-inf, "
        f"10 steps, at 8/255, with radius 0) or the adaptive top-k attack, and a method with and without a DDS "
        f"variant; this run: attack {cfg.attack}, radii {', '.join(f'{r:g}' for r in cfg.radii_255)}/255, "
        f"DDS {', '.join(d.variant for d in cfg.dds) or 'none'}."
    )


def write_run_verdicts(
    cfg: ExperimentConfig, out_dir: Path, rows: pd.DataFrame, tables: dict[str, pd.DataFrame]
) -> pd.DataFrame | None:
    """Judge the claims the run measures and write verdicts.csv/.md and verdicts_by_radius.csv/.md (with its
    figure, figures/radius_curves.png) in `out_dir` (removed when it measures none)."""
    table, curves = _judged(cfg, rows, tables, None, 2000)
    stale = [f"{name}{suffix}" for name in (STEM, CURVES_STEM) for suffix in (".md", ".csv")]
    for name in stale if table is None else stale[2:] if curves is None else []:
        (out_dir / name).unlink(missing_ok=True)
    if table is None:
        return None
    context = [
        *_context(cfg, table),
        "The claims suite (`pytest claims/`) judges the same claims on its own "
        "experiment (claims/conftest.py); the two agree only as far as their settings and images do.",
    ]
    write_table(table, out_dir, STEM, "Claims measured by this run", CONVENTIONS, context)
    if curves is not None:
        write_table(curves, out_dir, CURVES_STEM, "Claims along the radius axis", RADIUS_CONVENTIONS, context[:1])
    return table


def radius_figure(out_dir: Path) -> Path | None:
    """figures/radius_curves.png from the run's verdicts_by_radius.csv (None without it, or with one radius)."""
    from harness.report.radius_curves import radius_curve_figure

    path = out_dir / f"{CURVES_STEM}.csv"
    if not path.is_file():
        return None
    curves = pd.read_csv(path, dtype={"control": str}, keep_default_na=False, na_values=[""])
    return radius_curve_figure(curves, out_dir / "figures" / "radius_curves.png")


def read_run_verdicts(out_dir: Path) -> pd.DataFrame | None:
    path = out_dir / f"{STEM}.csv"
    if not path.is_file():
        return None
    table = pd.read_csv(path, dtype={"control": str}, keep_default_na=False, na_values=[""])
    table["control"] = table["control"].fillna("")
    return table


def run_summary(cfg: ExperimentConfig, out_dir: Path, limit: int = 12) -> list[str]:
    """What the main command prints last: the counts of the run's verdicts, then each claim group's
    outcomes per form and metric over the methods."""
    table = read_run_verdicts(out_dir)
    if table is None:
        return [_none_measured(cfg)]
    out = _context(cfg, table)
    rel = table[table["control"] == ""]
    groups = list(rel.groupby(["group", "form", "metric"], sort=True)["outcome"])
    width = max((len(str(m)) for (_, _, m), _ in groups), default=0)
    for (group, form, metric), outcomes in groups[:limit]:
        counts = ", ".join(f"{int(n)} {o}" for o, n in outcomes.value_counts().items())
        out.append(f"  {group:<6} {form:<17} {metric:<{width}}  {counts} (of {len(outcomes)} methods)")
    if len(groups) > limit:
        out.append(f"  ... and {len(groups) - limit} more groups")
    out.append(f"Every verdict with its interval: {out_dir / (STEM + '.md')}")
    return out
