"""Measure a claim on experiment tables and judge it.

Relation claims compare the explanation with DDS (the claim's variant) and without, in the same
setting; `delta` is always measured_dds - measured_none for relations and measured - reported
for values, in the metric's own unit.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import pandas as pd

from harness.claims.registry import Claim
from harness.claims.uncertainty import delta_interval
from harness.metrics.registry import resolve

COST_METRICS = ("seconds_per_image", "energy_kwh_per_image", "kg_co2eq_per_image")


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    measured: float | None
    measured_none: float | None
    delta: float | None
    held: bool | None
    reason: str = ""
    interval: tuple[float, float] | None = None  # 95% paired-bootstrap interval of delta (relations)

    @property
    def noise(self) -> str:
        """Whether delta is beyond the images' sampling noise ('' without an interval)."""
        if self.interval is None:
            return ""
        lo, hi = self.interval
        where = "within sampling noise" if lo <= 0.0 <= hi else "beyond sampling noise"
        return f"delta 95% CI [{lo:+.4g}, {hi:+.4g}] (paired bootstrap over images): {where}"

    @property
    def status(self) -> str:
        return {True: "held", False: "failed", None: "skipped"}[self.held]

    def summary(self) -> str:
        c = self.claim
        if self.measured is None:
            return f"{c.id}: {self.status} ({self.reason})"
        if c.kind == "value":
            return (f"{c.id}: measured {self.measured:.4g} vs reported {c.reported:.4g} {c.convention} "
                    f"(delta {self.delta:+.4g}, tolerance {c.tolerance:g}) -> {self.status}")
        noise = f"; {self.noise}" if self.interval is not None else ""
        return (f"{c.id}: {c.metric} ({c.convention}) with {c.dds} DDS {self.measured:.4g}, without "
                f"{self.measured_none:.4g} (delta {self.delta:+.4g}; needs {c.relation}, tolerance {c.tolerance:g}"
                f"{noise}) -> {self.status}")


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
    """The claim's metric, in the claim's convention, for `dds` ('none' or a variant)."""
    if claim.metric in ("pixel_accuracy", "mIoU", "mAP"):
        return _pick(tables["segmentation"], claim, dds, claim.metric)
    if claim.metric == "top1_accuracy":  # clean top-1 (fraction): the clean point of any plain curve
        table = tables["perturbation"]
        rows = table[(table["dds"] == "none") & (table["radius_255"] == 0)]
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


def judge(claim: Claim, measured: float, measured_none: float | None = None) -> Verdict:
    if not math.isfinite(measured) or (measured_none is not None and not math.isfinite(measured_none)):
        return Verdict(claim, measured, measured_none, None, False, "measurement is not finite")
    if claim.kind == "value":
        delta = measured - float(claim.reported)
        return Verdict(claim, measured, None, delta, abs(delta) <= claim.tolerance)
    assert measured_none is not None
    delta = measured - measured_none
    if claim.relation == "dds >= none":
        held = delta >= -claim.tolerance
    elif claim.relation == "dds <= none":
        held = delta <= claim.tolerance
    else:  # "dds / none >= 1"
        held = measured_none > 0 and measured / measured_none >= 1 - claim.tolerance
    reason = f"ratio dds / none = {measured / measured_none:.3g}" if claim.relation == "dds / none >= 1" and \
        measured_none > 0 else ""
    return Verdict(claim, measured, measured_none, delta, held, reason)


def evaluate(claim: Claim, tables: dict[str, pd.DataFrame]) -> Verdict:
    """Judge `claim` on experiment tables; a `rows` entry (the per-image rows the tables came from)
    adds the bootstrap interval of a relation's delta (`harness.claims.uncertainty`)."""
    if claim.kind == "value":
        return judge(claim, measure_metric(claim, tables, claim.dds))
    verdict = judge(claim, measure_metric(claim, tables, claim.dds), measure_metric(claim, tables, "none"))
    if "rows" in tables:
        verdict = dataclasses.replace(verdict, interval=delta_interval(claim, tables["rows"]))
    return verdict
