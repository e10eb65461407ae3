"""Measure a claim on an experiment and conclude one of held / contradicted / inconclusive / vacuous.

- value: held when |measured - reported| <= tolerance, else contradicted.
- relation (`dds >= none`, `dds <= none`, `dds drop < none drop`): the 95% paired-bootstrap interval
  of the effect over the images decides. Held when it lies on the claimed side of 0, contradicted when
  it lies on the other side, inconclusive when it contains 0 (a tie is never held). A robustness claim
  (measured under attack) is judged at every attacked radius its rows have (`by_radius`, one verdict
  each) and summarised over them (`summarise_radii`, docs/PROTOCOL.md section 1): at a radius the attack
  bites when the interval of the plain method's degradation from clean to attacked excludes 0 on the
  harmful side and its one-sided p survives Holm over the radii; where it does not bite the radius is
  vacuous. The claim is held when it is held at every radius where the attack bites, its p-values
  surviving Holm over those radii; contradicted when it is contradicted at one (Holm likewise); vacuous
  when the attack bites at no radius; else inconclusive.
- relation `dds work > none work` (cost): counted FLOPs per image with DDS over without; held when the
  ratio exceeds 1. Wall-clock and energy ratios are reported, never asserted (they depend on load).
- effect: a reported DDS effect (with minus without); held when the measured effect lies within
  z * sqrt(se_ours^2 + se_reported^2), both standard errors from this run's per-image spread, the
  second scaled to the paper's sample size.

`delta` is measured_dds - measured_none for level relations, degradation_dds - degradation_none for
drop relations (degradation = clean - attacked for higher-is-better metrics, attacked - clean
otherwise, 1 - overlap for top-k overlap), measured - reported for values and effects.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from harness.claims.registry import DROP_RELATION, WORK_RELATION, Claim
from harness.claims.uncertainty import (
    LEVEL,
    bootstrap_statistics,
    holm,
    holm_adjusted,
    one_sided_p,
    percentile_interval,
)
from harness.cost.emissions import CPU_POWER_MODES
from harness.metrics.registry import resolve

COST_METRICS = ("seconds_per_image", "energy_kwh_per_image", "kg_co2eq_per_image", "flops_per_image")
NO_DDS = "none"
# Re reports DDS jobs needing about 10x the time of plain ones (10 h vs 1 h job limits): a limit, not a measurement.
RE_REPORTED_COST_RATIO = 10.0


@dataclass(frozen=True)
class Verdict:
    """What a claim's evaluation measured and concluded (`outcome`, one of registry.OUTCOMES)."""

    claim: Claim
    outcome: str
    measured: float | None = None
    measured_none: float | None = None
    delta: float | None = None
    interval: tuple[float, float] | None = None  # 95% paired-bootstrap interval of delta
    p_value: float | None = None  # one-sided, for the claimed direction (normal approx., bootstrap SE)
    bite: float | None = None  # the plain method's degradation from clean to attacked (robustness claims)
    bite_interval: tuple[float, float] | None = None
    bite_p: float | None = None  # one-sided p of "the attack degrades the plain method" (normal approx.)
    flipped: float | None = None  # percent of the plain predictions the attack changed
    tolerance: float | None = None  # the tolerance applied (values: the claim's; effects: derived)
    n_images: int | None = None
    reason: str = ""
    # Robustness relations: the verdict at each attacked radius of the rows (the headline radius included);
    # the fields above are the headline radius's (claim.radius_255), `outcome` and `p_value` the summary's.
    by_radius: tuple[Verdict, ...] = ()

    @property
    def radius_255(self) -> float:
        return self.claim.radius_255

    @property
    def decidable_radii(self) -> tuple[float, ...]:
        """The attacked radii where the attack bites (the claim is not vacuous there)."""
        return tuple(v.radius_255 for v in self.by_radius if v.outcome != "vacuous")

    @property
    def radius_curve(self) -> str:
        """Each radius's outcome, e.g. '2: vacuous, 8: held, 32: held' (radii in 1/255 units)."""
        return ", ".join(f"{v.radius_255:g}: {v.outcome}" for v in self.by_radius)

    @property
    def held(self) -> bool:
        return self.outcome == "held"

    @property
    def status(self) -> str:
        return self.outcome

    @property
    def noise(self) -> str:
        if self.interval is None:
            return ""
        return "delta {:.0%} CI [{:+.4g}, {:+.4g}] (paired bootstrap over {} images)".format(
            LEVEL, *self.interval, self.n_images
        )

    @property
    def attack_effect(self) -> str:
        if self.bite is None:
            return ""
        lo, hi = self.bite_interval or (math.nan, math.nan)
        flips = "" if self.flipped is None else f", {self.flipped:.0f}% of plain predictions flipped"
        return f"attack degrades the plain method by {self.bite:+.4g} (CI [{lo:+.4g}, {hi:+.4g}]{flips})"

    def summary(self) -> str:
        c = self.claim
        if self.measured is None:
            return f"{c.id}: {self.outcome} ({self.reason})"
        if c.kind in ("value", "effect"):
            what = "effect (dds - none)" if c.kind == "effect" else c.metric
            text = (
                f"{c.id}: {what} measured {self.measured:.4g} vs reported {c.reported:.4g} {c.convention} "
                f"(delta {self.delta:+.4g}, tolerance {self.tolerance:.4g})"
            )
        else:
            text = (
                f"{c.id}: {c.metric} ({c.convention}) with {c.dds} DDS {self.measured:.4g}, without "
                f"{self.measured_none:.4g}; needs {c.relation}, delta {self.delta:+.4g}"
            )
        extra = "; ".join(x for x in (self.noise, self.attack_effect, self.reason) if x)
        return f"{text}{'; ' + extra if extra else ''} -> {self.outcome}"


def _pick(table: pd.DataFrame, claim: Claim, dds: str, column: str, **extra) -> float:
    sel = (table["method"] == claim.method) & (table["dds"] == dds) & (table["radius_255"] == claim.radius_255)
    for key, value in extra.items():
        sel &= table[key] == value
    hit = table.loc[sel, column]
    if len(hit) != 1:
        raise LookupError(
            f"claim {claim.id}: expected one {column} row for method={claim.method}, dds={dds}, "
            f"radius={claim.radius_255}/255 {extra or ''}; found {len(hit)}"
        )
    return float(hit.iloc[0])


def measure_metric(claim: Claim, tables: dict[str, pd.DataFrame], dds: str) -> float:
    """The claim's metric, in the claim's convention, for `dds` ('none' or a variant), from the tables."""
    if claim.metric in ("pixel_accuracy", "mIoU", "mAP"):
        return _pick(tables["segmentation"], claim, dds, claim.metric)
    if claim.metric == "top1_accuracy":  # clean top-1 (fraction): the clean point of any plain curve
        table = tables["perturbation"]
        rows = table[(table["dds"] == NO_DDS) & (table["radius_255"] == 0)]
        if rows.empty:
            raise LookupError(f"claim {claim.id}: needs a clean (radius 0) perturbation run without DDS")
        return float(rows["clean_top1"].iloc[0])
    if claim.metric in COST_METRICS:  # the cost table: one row per (method, dds), no radius
        table = tables["cost"]
        hit = table.loc[(table["method"] == claim.method) & (table["dds"] == dds), claim.metric]
        if len(hit) != 1:
            raise LookupError(
                f"claim {claim.id}: expected one cost row for {claim.method}, dds={dds}; found {len(hit)}"
            )
        return float(hit.iloc[0])
    if claim.metric == "topk_overlap":
        return _pick(tables["faithfulness"], claim, dds, "topk_overlap")
    if "_auc" in claim.metric:
        spec = resolve(claim.metric, claim.convention)
        explained = "target" if claim.metric.endswith("_target") else "pred"
        return _pick(tables["perturbation"], claim, dds, spec.name, explained=explained)
    raise LookupError(f"claim {claim.id}: no measurement defined for metric {claim.metric!r}")


def _frame(rows: pd.DataFrame, claim: Claim, dds: str, radius: float) -> pd.DataFrame:
    sel = rows[(rows["method"] == claim.method) & (rows["dds"] == dds) & (rows["radius_255"] == radius)]
    if sel.empty:
        raise LookupError(f"claim {claim.id}: no rows for method={claim.method}, dds={dds}, radius={radius}/255")
    return sel.set_index("item_id").sort_index()


def _degradation(claim: Claim, clean: np.ndarray, attacked: np.ndarray) -> np.ndarray:
    """How much the attack hurts, positive = worse (elementwise on points or replicates)."""
    return clean - attacked if claim.higher_is_better else attacked - clean


def _side(claim: Claim) -> int:
    """+1 when the claim says delta > 0, -1 when it says delta < 0."""
    return +1 if claim.relation == "dds >= none" else -1


def _conclude(lo: float, hi: float, side: int) -> str:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "inconclusive"
    if (side > 0 and lo > 0) or (side < 0 and hi < 0):
        return "held"
    if (side > 0 and hi < 0) or (side < 0 and lo > 0):
        return "contradicted"
    return "inconclusive"


def _relation(claim: Claim, rows: pd.DataFrame, resamples: int) -> Verdict:
    r = claim.radius_255
    overlap = claim.metric == "topk_overlap"
    if claim.relation == DROP_RELATION and not overlap:
        frames = [_frame(rows, claim, d, rr) for d in (claim.dds, NO_DDS) for rr in (0.0, r)]
        points, reps = bootstrap_statistics(claim.metric, claim.convention, frames, resamples)
        delta_of = lambda x: _degradation(claim, x[..., 0], x[..., 1]) - _degradation(claim, x[..., 2], x[..., 3])  # noqa: E731
        measured, measured_none = (
            float(_degradation(claim, points[0], points[1])),
            float(_degradation(claim, points[2], points[3])),
        )
        bite_of = lambda x: _degradation(claim, x[..., 2], x[..., 3])  # noqa: E731
    else:
        frames = [_frame(rows, claim, d, r) for d in (claim.dds, NO_DDS)]
        if claim.robustness and not overlap:
            frames.append(_frame(rows, claim, NO_DDS, 0.0))
        points, reps = bootstrap_statistics(claim.metric, claim.convention, frames, resamples)
        if claim.relation == DROP_RELATION:  # top-k overlap already compares clean and attacked maps
            delta_of = lambda x: (1.0 - x[..., 0]) - (1.0 - x[..., 1])  # noqa: E731
            measured, measured_none = 1.0 - float(points[0]), 1.0 - float(points[1])
        else:
            delta_of = lambda x: x[..., 0] - x[..., 1]  # noqa: E731
            measured, measured_none = float(points[0]), float(points[1])
        bite_of = (lambda x: 1.0 - x[..., 1]) if overlap else (lambda x: _degradation(claim, x[..., 2], x[..., 1]))
    delta = float(delta_of(points))
    interval = percentile_interval(delta_of(reps))
    side = _side(claim)
    base = dict(
        claim=claim,
        measured=measured,
        measured_none=measured_none,
        delta=delta,
        interval=interval,
        p_value=one_sided_p(delta, delta_of(reps), side),
        n_images=len(frames[0]),
    )
    if claim.robustness:
        plain = _frame(rows, claim, NO_DDS, r)
        bite = float(bite_of(points))
        base.update(
            bite=bite,
            bite_interval=percentile_interval(bite_of(reps)),
            bite_p=one_sided_p(bite, bite_of(reps), +1),
            flipped=100.0 * float((plain["pred"] != plain["clean_pred"]).mean()),
        )
        if not base["bite_interval"][0] > 0:
            return Verdict(outcome="vacuous", reason="the attack does not measurably hurt the plain method", **base)
    outcome = _conclude(*interval, side)
    reason = "" if math.isfinite(delta) else "no scorable images (degenerate maps)"
    return Verdict(outcome=outcome, reason=reason, **base)


def attacked_radii(claim: Claim, rows: pd.DataFrame) -> list[float]:
    """The attacked radii (1/255 units, sorted) at which `rows` have the claim's method with and without its DDS,
    the claim's headline radius always among them (a missing one fails in `_relation`, naming it)."""
    sel = rows[rows["method"] == claim.method]
    radii = [set(sel.loc[sel["dds"] == d, "radius_255"].astype(float)) for d in (claim.dds, NO_DDS)]
    return sorted({r for r in radii[0] & radii[1] if r > 0} | {float(claim.radius_255)})


def _over_radii(claim: Claim, rows: pd.DataFrame, resamples: int) -> Verdict:
    """A robustness relation judged at each attacked radius of the rows, then summarised (`summarise_radii`)."""
    per = [
        _relation(claim if r == claim.radius_255 else dataclasses.replace(claim, radius_255=r), rows, resamples)
        for r in attacked_radii(claim, rows)
    ]
    return summarise_radii(claim, per)


def summarise_radii(claim: Claim, per: list[Verdict]) -> Verdict:
    """One outcome for a robustness claim from its verdicts at each attacked radius (docs/PROTOCOL.md section 1).

    The attack bites at a radius when its degradation interval excludes 0 and its one-sided p survives Holm
    (5% family-wise) over the radii; elsewhere the radius is vacuous. Over the biting radii: held when every one
    is held and their p-values all survive Holm; contradicted when one is contradicted and its opposite-side p
    survives Holm; vacuous when none bites; else inconclusive. The summary keeps the headline radius's numbers;
    its p-value is the largest Holm-adjusted p of the biting radii (held needs it <= 5%)."""
    bites = holm([1.0 if v.bite_p is None else v.bite_p for v in per])
    per = [
        v
        if v.outcome == "vacuous" or ok
        else dataclasses.replace(
            v,
            outcome="vacuous",
            reason=f"the attack's degradation of the plain method (one-sided p {v.bite_p:.2g}) does not "
            f"survive Holm over the {len(per)} attacked radii",
        )
        for v, ok in zip(per, bites, strict=True)
    ]
    headline = next(v for v in per if v.radius_255 == claim.radius_255)
    decided = [v for v in per if v.outcome != "vacuous"]
    where = f"radii {', '.join(f'{v.radius_255:g}' for v in per)}/255"
    if not decided:
        return dataclasses.replace(
            headline,
            claim=claim,
            outcome="vacuous",
            by_radius=tuple(per),
            reason=f"the attack does not measurably hurt the plain method at any of {where}",
        )
    p = [1.0 if v.p_value is None else v.p_value for v in decided]
    held, against = holm(p), holm([1.0 - x for x in p])
    if any(v.outcome == "contradicted" and a for v, a in zip(decided, against, strict=True)):
        outcome = "contradicted"
    elif all(v.outcome == "held" and h for v, h in zip(decided, held, strict=True)):
        outcome = "held"
    else:
        outcome = "inconclusive"
    at = ", ".join(f"{v.radius_255:g}" for v in decided)
    reason = f"judged at the radii where the attack bites ({at} of {where}; Holm over them)"
    if headline.reason and headline.outcome != "vacuous":
        reason = f"{headline.reason}; {reason}"
    if headline.outcome == "vacuous":  # the row shows the headline's numbers: say where the outcome comes from
        shown = "; ".join(
            f"{v.radius_255:g}/255 {v.outcome}: delta {v.delta:+.4g} CI [{v.interval[0]:+.4g}, {v.interval[1]:+.4g}]"
            for v in decided
            if v.delta is not None and v.interval is not None
        )
        reason = f"{reason}; the headline {headline.radius_255:g}/255 does not bite (its numbers are shown): {shown}"
    return dataclasses.replace(
        headline,
        claim=claim,
        outcome=outcome,
        p_value=max(holm_adjusted(p)),
        by_radius=tuple(per),
        reason=reason,
    )


def _work(claim: Claim, tables: dict[str, pd.DataFrame]) -> Verdict:
    """Counted compute: FLOPs per image with DDS over without (torch's FLOP counter, load-independent)."""
    table = tables["cost"]
    dds = table[(table["method"] == claim.method) & (table["dds"] == claim.dds)]
    plain = table[(table["method"] == claim.method) & (table["dds"] == NO_DDS)]
    if len(dds) != 1 or len(plain) != 1:
        raise LookupError(f"claim {claim.id}: expected one cost row each for {claim.method} with and without DDS")
    dds, plain = dds.iloc[0], plain.iloc[0]
    ratio = float(dds["flops_per_image"]) / float(plain["flops_per_image"])
    predicted = float(dds.get("predicted_flops_ratio", math.nan))
    source = CPU_POWER_MODES.get(dds["cpu_power_mode"], dds["cpu_power_mode"])
    reason = (
        f"counted FLOPs ratio dds/none = {ratio:.4g} (predicted from the variant's counted calls: "
        f"{predicted:.4g}); wall-clock ratio {float(dds['seconds_ratio_vs_plain']):.3g} and energy ratio "
        f"{float(dds['energy_kwh_ratio_vs_plain']):.3g} (energy source: {source}) are reported, "
        f"not asserted; Re reports ~{RE_REPORTED_COST_RATIO:g}x job time (job limits, not a measurement)"
    )
    return Verdict(
        claim,
        "held" if ratio > 1.0 else "contradicted",
        float(dds["flops_per_image"]),
        float(plain["flops_per_image"]),
        ratio - 1.0,
        reason=reason,
    )


def _effect(claim: Claim, rows: pd.DataFrame, resamples: int) -> Verdict:
    frames = [_frame(rows, claim, d, claim.radius_255) for d in (claim.dds, NO_DDS)]
    points, reps = bootstrap_statistics(claim.metric, claim.convention, frames, resamples)
    effect_reps = reps[:, 0] - reps[:, 1]
    effect = float(points[0] - points[1])
    n = len(frames[0])
    se_ours = float(np.nanstd(effect_reps, ddof=1))
    se_reported = se_ours * math.sqrt(n / claim.n_reported)  # same per-image spread at the paper's n
    tolerance = float(norm.ppf(0.5 + LEVEL / 2) * math.hypot(se_ours, se_reported))
    delta = effect - float(claim.reported)
    reason = (
        f"tolerance = z({LEVEL:.0%}) x sqrt(se_ours^2 + se_reported^2) = {tolerance:.4g}, "
        f"se_ours = {se_ours:.4g} on {n} images, se_reported = se_ours x sqrt({n}/{claim.n_reported})"
    )
    return Verdict(
        claim,
        "held" if abs(delta) <= tolerance else "contradicted",
        effect,
        None,
        delta,
        interval=percentile_interval(effect_reps),
        tolerance=tolerance,
        n_images=n,
        reason=reason,
    )


def judge_value(claim: Claim, measured: float) -> Verdict:
    if not math.isfinite(measured):
        return Verdict(claim, "inconclusive", measured, reason="measurement is not finite")
    delta = measured - float(claim.reported)
    return Verdict(
        claim,
        "held" if abs(delta) <= claim.tolerance else "contradicted",
        measured,
        None,
        delta,
        tolerance=claim.tolerance,
    )


def evaluate(claim: Claim, tables: dict[str, pd.DataFrame], resamples: int = 2000) -> Verdict:
    """Evaluate `claim` on an experiment's tables; relations and effects need its per-image `rows` too."""
    if claim.kind == "value":
        return judge_value(claim, measure_metric(claim, tables, claim.dds))
    if claim.relation == WORK_RELATION:
        return _work(claim, tables)
    if "rows" not in tables:
        raise LookupError(f"claim {claim.id}: a {claim.kind} claim is judged on per-image rows; none were given")
    if claim.kind == "effect":
        return _effect(claim, tables["rows"], resamples)
    if claim.robustness:
        return _over_radii(claim, tables["rows"], resamples)
    return _relation(claim, tables["rows"], resamples)
