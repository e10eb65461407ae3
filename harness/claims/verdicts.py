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
    "radius axis: a robustness claim is judged at every attacked radius of its experiment (outcome_by_radius, "
    "radii in 1/255 pixel units; the numbers of the row are the headline radius's, radius_255). The attack "
    "bites at a radius when the plain method's degradation interval excludes 0 and survives Holm over the "
    "radii; the claim's outcome is held when it is held at every biting radius (Holm over them), "
    "contradicted when contradicted at one (Holm), vacuous when the attack bites at none, else inconclusive. "
    "p_one_sided is then the largest Holm-adjusted p of the biting radii.",
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
    "control: negative controls (identity DDS, baseline maps with no content) must not be held; the "
    "positive control oracle (a 'DDS' that returns the clean image) must be held wherever the attack bites "
    "(its held share of the decidable claims is the suite's power); noise_only (DDS without its denoiser) "
    "is reported as a finding: where it holds, noise alone already makes the papers' claim hold.",
    "test: passed / failed / xfailed (an outcome listed in claims/expectations.yaml with its numbers) "
    "/ skipped; `judged` = measured by a run, outside the test suite.",
    "embedded-* claims are analogues on the embedded world, not the papers' results.",
)


RADIUS_CONVENTIONS = (
    "One row per robustness claim and attacked radius (radius_255, L-inf PGD radius in 1/255 pixel units). "
    "delta [delta_lo, delta_hi]: the claim's effect at that radius with its 95% paired-bootstrap interval (level: "
    "dds - none under attack; drop: degradation with DDS - without; in the metric's unit). "
    "attack_degrades_plain_by [bite_lo, bite_hi]: the attack's degradation of the plain method at that radius "
    "(positive = worse). outcome_at_radius: vacuous where the attack does not bite (interval not excluding 0, "
    "or not surviving Holm over the radii); claim_outcome: the summary over the radii (see verdicts.md).",
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
        "radius_255": c.radius_255,
        "outcome_by_radius": verdict.radius_curve or None,
        "tolerance": verdict.tolerance if verdict.tolerance is not None else c.tolerance,
        "n_images": verdict.n_images or run.get("n_images"),
        "outcome": verdict.outcome,
        "test": test or ("passed" if verdict.held else "failed"),
        "why": "; ".join(r for r in (reason, verdict.reason) if r),
        "config_hash": run.get("config_hash", ""),
        "experiment": run.get("name", ""),
    }


def radius_rows(verdict: Verdict, run: dict | None = None) -> list[dict]:
    """The long table of a robustness claim's radius curve: one row per attacked radius (1/255 units) with the
    effect and the attack's bite on the plain method, each with its 95% interval, and that radius's outcome."""
    c = verdict.claim
    out = []
    for v in verdict.by_radius:
        lo, hi = v.interval or (None, None)
        blo, bhi = v.bite_interval or (None, None)
        out.append(
            {
                "claim": c.id,
                "group": c.claim,
                "control": c.control or "",
                "form": c.table,
                "method": c.method,
                "dds": c.dds,
                "metric": f"{c.metric} ({c.convention})",
                "radius_255": v.radius_255,
                "delta": v.delta,
                "delta_lo": lo,
                "delta_hi": hi,
                "attack_degrades_plain_by": v.bite,
                "bite_lo": blo,
                "bite_hi": bhi,
                "outcome_at_radius": v.outcome,
                "claim_outcome": verdict.outcome,
                "experiment": (run or {}).get("name", ""),
            }
        )
    return out


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
    power = oracle_power(table)
    if power is not None:
        lines.append(power)
    return header, lines


def oracle_power(table: pd.DataFrame) -> str | None:
    """'Power: oracle holds N of M decidable claims ...' from the positive control's rows (None without them)."""
    rows = table[table["control"] == "oracle"]
    if rows.empty:
        return None
    decidable = rows[rows["outcome"] != "vacuous"]
    held = int((decidable["outcome"] == "held").sum())
    return (
        f"Power (positive control): oracle holds {held} of {len(decidable)} decidable claims "
        f"({len(rows) - len(decidable)} of {len(rows)} vacuous: the attack bites at no radius)."
    )
