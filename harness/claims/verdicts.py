"""The verdict table: one row per judged claim, its family-wise column, its counts and its conventions.

Written by the claims suite (reports/claims/verdicts.*) and by every run for the claims its own
settings measure (`harness.report.run_verdicts`), with the same columns and conventions.
"""

from __future__ import annotations

import pandas as pd

from harness.claims.evaluate import Verdict
from harness.claims.registry import OUTCOMES

CONVENTIONS = (
    "outcome: held = the 95% paired-bootstrap interval of the effect lies on the claimed side of 0; "
    "contradicted = on the other side; inconclusive = it contains 0 (never counted as held); vacuous = "
    "a robustness claim whose attack does not measurably hurt the plain method "
    "(attack_degrades_plain_ci95 does not exclude 0); skipped = inputs missing (the reason says which). "
    "Value claims: held when |delta| <= tolerance.",
    "form: level = the metric under attack with vs without DDS (dds >= none / dds <= none); drop = the "
    "degradation from clean to attacked with vs without DDS (dds drop < none drop: DDS degrades less); "
    "work = counted FLOPs per image with vs without DDS (re-4). Top-k overlap compares the clean and "
    "attacked maps, so for re-3 the level is the drop.",
    "delta: measured - measured_without_dds (level), degradation_dds - degradation_none (drop), "
    "measured - reported (values), FLOPs ratio - 1 (work); in the metric's unit.",
    "delta_ci95: 95% percentile interval over 2,000 paired bootstrap resamples of the images (the same "
    "draws for every setting compared). p_one_sided: p-value of the claimed direction from the "
    "bootstrap standard error (normal approximation). holm_familywise: whether the claim's effect "
    "survives Holm-Bonferroni at 5% family-wise over the non-control relation claims of this run.",
    "control: negative controls (identity DDS, baseline maps with no content) must not be held; "
    "noise_only (DDS without its denoiser) is reported as a finding: where it holds, noise alone "
    "already makes the papers' claim hold.",
    "test: passed / failed / xfailed (an outcome listed in claims/expectations.yaml with its numbers) "
    "/ skipped; `judged` = measured by a run, outside the test suite.",
    "embedded-* claims are analogues on the embedded world, not the papers' results.",
)


def _fmt(interval: tuple[float, float] | None) -> str | None:
    return None if interval is None else "[{:+.4g}, {:+.4g}]".format(*interval)


def verdict_row(verdict: Verdict, test: str | None = None, reason: str = "", run: dict | None = None) -> dict:
    """The verdict table's row of `verdict`; test: what its test did (passed / failed / xfailed / skipped /
    judged); run: the experiment it was measured on (name, config_hash, n_images)."""
    c = verdict.claim
    run = run or {}
    return {
        "claim": c.id,
        "world": c.world,
        "group": c.claim,
        "control": c.control or "",
        "form": c.table,
        "method": c.method,
        "dds": c.dds,
        "statement": c.statement,
        "metric": f"{c.metric} ({c.convention})",
        "reported": c.reported if c.kind != "relation" else c.relation,
        "measured": verdict.measured,
        "measured_without_dds": verdict.measured_none,
        "delta": verdict.delta,
        "delta_ci95": _fmt(verdict.interval),
        "p_one_sided": verdict.p_value,
        "attack_degrades_plain_by": verdict.bite,
        "attack_degrades_plain_ci95": _fmt(verdict.bite_interval),
        "plain_predictions_flipped_pct": verdict.flipped,
        "tolerance": verdict.tolerance if verdict.tolerance is not None else c.tolerance,
        "n_images": verdict.n_images or run.get("n_images"),
        "outcome": verdict.outcome,
        "test": test or ("passed" if verdict.held else "failed"),
        "why": "; ".join(r for r in (reason, verdict.reason) if r),
        "config_hash": run.get("config_hash", ""),
        "experiment": run.get("name", ""),
    }


def family_wise(table: pd.DataFrame) -> pd.Series:
    """Holm-Bonferroni over the relation claims of `table` that are not controls: does 'held' survive?"""
    from harness.claims.uncertainty import holm

    family = table["p_one_sided"].notna() & (table["control"] == "") & (table["outcome"] != "vacuous")
    out = pd.Series([""] * len(table), index=table.index, dtype=object)
    if family.any():
        rejected = holm(table.loc[family, "p_one_sided"].astype(float).tolist())
        out[family] = ["survives" if r else "does not survive" for r in rejected]
    return out


def verdict_table(rows: list[dict]) -> pd.DataFrame:
    """The rows sorted (world, control, claim), with the holm_familywise column after `outcome`."""
    table = pd.DataFrame(sorted(rows, key=lambda r: (r["world"], r["control"], r["claim"])))
    table.insert(table.columns.get_loc("outcome") + 1, "holm_familywise", family_wise(table))
    return table


def outcome_counts(table: pd.DataFrame) -> tuple[str, list[str]]:
    """'n held, n contradicted, ...' over the non-control claims, and one such line per control."""
    counts = table[table["control"] == ""]["outcome"].value_counts()
    header = ", ".join(f"{int(counts.get(o, 0))} {o}" for o in OUTCOMES)
    controls = table[table["control"] != ""].groupby("control")["outcome"].value_counts()
    lines = [
        f"Control {name}: " + ", ".join(f"{int(n)} {o}" for o, n in controls[name].items())
        for name in controls.index.get_level_values(0).unique()
    ]
    return header, lines
