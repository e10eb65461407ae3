"""Verdicts a sceptic can trust: intervals decide, ties and no-ops are never held, attacks must bite."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness.claims.evaluate import evaluate
from harness.claims.expectations import (
    Expected,
    control_family_held,
    decide,
    draft_expectations,
    load_expectations,
    record_also_seen,
)
from harness.claims.registry import DROP_RELATION, WORK_RELATION
from tests.test_claims_registry import _claim


def _rows(n: int = 60, harm: float = 0.2, gain: float = 0.0, dds_clean: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Rows at radius 0 and 8/255 without DDS and with carlini: the attack lowers the plain method's
    segmentation quality by `harm`; DDS adds `gain` under attack and `dds_clean` on clean images."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        base = rng.uniform(0.5, 0.9)
        for dds, radius, shift in (
            ("none", 0.0, 0.0),
            ("none", 8.0, -harm),
            ("carlini", 0.0, dds_clean),
            ("carlini", 8.0, -harm + gain),
        ):
            q = float(np.clip(base + shift + rng.normal(0, 0.03), 0, 1))
            stats = {
                "correct": 1000 * q,
                "labeled": 1000.0,
                "inter_bg": 500 * q,
                "union_bg": 600.0,
                "inter_fg": 300 * q,
                "union_fg": 300.0,
                "ap": q,
            }
            rows.append(
                {
                    "item_id": f"i{i:03d}",
                    "method": "rollout",
                    "dds": dds,
                    "radius_255": radius,
                    "pred": int(radius > 0),
                    "label": 0,
                    "clean_pred": 0,
                    **stats,
                    "topk_overlap": None if radius == 0 else q,
                }
            )
    return pd.DataFrame(rows)


def _verdict(rows: pd.DataFrame, **claim):
    return evaluate(_claim(metric="mIoU", **claim), {"rows": rows}, resamples=500)


def test_a_real_effect_is_held_a_reversed_one_contradicted_a_tie_inconclusive():
    assert _verdict(_rows(gain=0.1)).outcome == "held"
    assert _verdict(_rows(gain=-0.1)).outcome == "contradicted"
    tie = _verdict(_rows(gain=0.0))
    assert tie.outcome == "inconclusive" and tie.interval[0] < 0 < tie.interval[1]


def test_an_identity_dds_is_never_held_and_fails_its_test():
    rows = _rows()
    same = rows[rows["dds"] == "none"].assign(dds="carlini")
    rows = pd.concat([rows[rows["dds"] == "none"], same], ignore_index=True)
    for relation in ("dds >= none", DROP_RELATION):
        verdict = _verdict(rows, relation=relation)
        assert verdict.delta == 0.0 and verdict.interval == (0.0, 0.0) and verdict.outcome == "inconclusive"
        assert decide(verdict, {}).action == "fail"


def _control(rows: pd.DataFrame, ident: str):
    claim = _claim(id=ident, metric="mIoU", control="baseline_maps", expect="not_held")
    return evaluate(claim, {"rows": rows}, resamples=500)


def test_a_negative_control_fails_only_beyond_chance_over_its_family():
    # 30 content-free controls: some hold on their own interval by chance (the criterion's per-claim rate);
    # the family is judged by Holm at 5% family-wise, so chance holds pass and a real effect still fails.
    family = [_control(_rows(n=30, gain=0.0, seed=s), f"c{s}") for s in range(30)]
    chance = [v for v in family if v.held]
    assert chance, "the seeds were picked to include a control held by chance"
    strong = _control(_rows(n=30, gain=0.1, seed=99), "real")
    held = control_family_held([*family, strong])
    assert held["real"] and not any(held[v.claim.id] for v in chance)
    assert decide(chance[0], {}).action == "fail"  # judged alone, a chance hold fails
    passed = decide(chance[0], {}, held[chance[0].claim.id])
    assert passed.action == "pass" and "does not survive Holm" in passed.message
    assert decide(strong, {}, held["real"]).action == "fail"


def test_an_attack_that_does_not_hurt_makes_the_claim_vacuous():
    verdict = _verdict(_rows(harm=0.0, gain=0.1))
    assert verdict.outcome == "vacuous"
    assert verdict.bite_interval[0] <= 0 and "does not measurably hurt" in verdict.summary()
    assert _verdict(_rows(harm=0.2, gain=0.1)).bite_interval[0] > 0


def test_the_drop_and_the_level_are_different_claims():
    # DDS lifts clean and attacked alike: better level under attack, the same drop (no robustness gained).
    rows = _rows(gain=0.1, dds_clean=0.1)
    assert _verdict(rows).outcome == "held"
    assert _verdict(rows, relation=DROP_RELATION).outcome == "inconclusive"
    # DDS lowers the clean level but keeps it under attack: the drop is smaller, the level equal.
    rows = _rows(gain=0.0, dds_clean=-0.15)
    assert _verdict(rows, relation=DROP_RELATION).outcome == "held"


def test_degenerate_maps_are_left_out_not_scored():
    rows = _rows(gain=0.1)
    rows["topk_overlap"] = rows["topk_overlap"].astype(float)
    rows.loc[rows["dds"] == "carlini", "topk_overlap"] = np.nan
    verdict = evaluate(
        _claim(metric="topk_overlap", convention="fraction", claim="re-3"), {"rows": rows}, resamples=200
    )
    assert math.isnan(verdict.measured) and verdict.outcome == "inconclusive"


def _cost(ratio: float) -> dict[str, pd.DataFrame]:
    rows = [
        {
            "method": "rollout",
            "dds": dds,
            "flops_per_image": flops,
            "seconds_ratio_vs_plain": r,
            "energy_kwh_ratio_vs_plain": r,
            "cpu_power_mode": "cpu_load",
            "predicted_flops_ratio": r,
        }
        for dds, flops, r in (("none", 1e9, 1.0), ("carlini", 1e9 * ratio, ratio))
    ]
    return {"cost": pd.DataFrame(rows)}


def test_the_work_claim_rests_on_counted_flops():
    claim = _claim(claim="re-4", metric="flops_per_image", relation=WORK_RELATION, radius_255=0.0)
    held = evaluate(claim, _cost(8.0))
    assert held.outcome == "held" and "estimate" in held.reason and "not asserted" in held.reason
    assert evaluate(claim, _cost(1.0)).outcome == "contradicted"


def test_an_effect_claim_derives_its_tolerance_from_both_sample_sizes():
    rows = _rows(gain=0.05)
    claim = _claim(kind="effect", relation=None, reported=5.0, n_reported=760, radius_255=8.0)
    verdict = evaluate(claim, {"rows": rows}, resamples=1000)
    se_ours = (verdict.interval[1] - verdict.interval[0]) / (2 * 1.96)
    expected = 1.96 * se_ours * math.sqrt(1 + 60 / 760)
    assert verdict.tolerance == pytest.approx(expected, rel=0.15)
    far = evaluate(_claim(kind="effect", relation=None, reported=-5.0, n_reported=760), {"rows": rows}, resamples=1000)
    assert far.outcome == "contradicted"


def test_expectations_are_strict():
    verdict = _verdict(_rows(gain=-0.1))
    known = {verdict.claim.id: Expected("contradicted", "x", "why")}
    assert decide(verdict, known).action == "xfail"
    assert decide(verdict, {verdict.claim.id: Expected("inconclusive", "x", "why")}).action == "fail"
    held = _verdict(_rows(gain=0.1))
    assert decide(held, {held.claim.id: Expected("contradicted", "x", "why")}).action == "fail"
    assert decide(held, {}).action == "pass"


def test_a_borderline_claim_accepts_the_outcomes_it_lists_and_nothing_else():
    held = _verdict(_rows(gain=0.1))
    tie = _verdict(_rows())
    assert held.outcome == "held" and tie.outcome == "inconclusive"
    borderline = {c: Expected("inconclusive", "x", "bound at 0", also_seen=("held",)) for c in (held.claim.id,)}
    passed = decide(held, borderline)
    assert passed.action == "pass" and "platform-sensitive" in passed.message and "bound at 0" in passed.message
    assert decide(tie, borderline).action == "xfail"
    vacuous = {held.claim.id: Expected("vacuous", "x", "why", also_seen=("inconclusive",))}
    assert decide(tie, vacuous).action == "xfail" and "platform-sensitive" in decide(tie, vacuous).message
    assert decide(held, vacuous).action == "fail"  # held is not listed: the list must be updated


def test_controls_must_not_hold():
    held = evaluate(
        _claim(metric="mIoU", control="identity", expect="not_held"), {"rows": _rows(gain=0.1)}, resamples=300
    )
    assert held.outcome == "held" and decide(held, {}).action == "fail"
    tie = evaluate(_claim(metric="mIoU", control="identity", expect="not_held"), {"rows": _rows()}, resamples=300)
    assert decide(tie, {}).action == "pass"
    report = evaluate(
        _claim(metric="mIoU", control="noise_only", expect="report"), {"rows": _rows(gain=0.1)}, resamples=300
    )
    assert decide(report, {}).action == "pass" and "finding" in decide(report, {}).message


def test_malformed_expectations_are_refused(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("x:\n  outcome: held\n  measured: m\n  reason: r\n")
    with pytest.raises(ValueError, match="outcome"):
        load_expectations(path)
    path.write_text("x:\n  outcome: vacuous\n")
    with pytest.raises(ValueError, match="keys"):
        load_expectations(path)
    for bad in ("[]", "[vacuous]", "[skipped]", "[maybe]"):
        path.write_text(f"x:\n  outcome: vacuous\n  measured: m\n  reason: r\n  also_seen: {bad}\n")
        with pytest.raises(ValueError, match="also_seen"):
            load_expectations(path)
    path.write_text("x:\n  outcome: vacuous\n  measured: m\n  reason: r\n  also_seen: held\n")
    assert load_expectations(path)["x"].also_seen == ("held",)
    assert load_expectations(tmp_path / "missing.yaml") == {}


def test_expectations_are_drafted_from_a_verdict_table(tmp_path):
    rows = [
        {
            "claim": "a",
            "control": "",
            "outcome": "vacuous",
            "metric": "mIoU (percent)",
            "dds": "carlini",
            "measured": 50.0,
            "measured_without_dds": 49.0,
            "delta": 1.0,
            "delta_ci95": "[-1, +3]",
            "n_images": 120,
            "attack_degrades_plain_by": -2.0,
            "attack_degrades_plain_ci95": "[-3, -1]",
            "plain_predictions_flipped_pct": 100.0,
        },
        {"claim": "b", "control": "", "outcome": "held"},
        {"claim": "c", "control": "identity", "outcome": "inconclusive"},
        {
            "claim": "d",
            "control": "",
            "outcome": "inconclusive",
            "metric": "mIoU (percent)",
            "n_images": 4,
            "delta_ci95": "[-1, +1]",
        },  # not in the registry (a check of claims/test_beyond.py): left out
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "verdicts.csv", index=False)
    path = tmp_path / "expectations.yaml"
    path.write_text(draft_expectations(tmp_path / "verdicts.csv", registered={"a", "b", "c"}))
    listed = load_expectations(path)
    assert set(listed) == {"a"} and listed["a"].outcome == "vacuous" and "improves" in listed["a"].reason
    kept = draft_expectations(
        tmp_path / "verdicts.csv", {"a": Expected("vacuous", "old", "a human reason")}, registered={"a"}
    )
    assert "a human reason" in kept
    # A borderline entry keeps its reason and other outcomes, and stays listed while it is held.
    borderline = {
        "a": Expected("inconclusive", "old", "bound at 0", ("held", "vacuous")),
        "b": Expected("vacuous", "old", "b is borderline", ("held",)),
    }
    path.write_text(draft_expectations(tmp_path / "verdicts.csv", borderline, registered={"a", "b"}))
    listed = load_expectations(path)
    assert listed["a"] == Expected("vacuous", listed["a"].measured, "bound at 0", ("held", "inconclusive"))
    assert listed["b"] == Expected("vacuous", "old", "b is borderline", ("held",))


def test_another_machines_outcomes_are_added_as_also_seen_and_nothing_is_dropped(tmp_path):
    numbers = {
        "metric": "mIoU (percent)",
        "dds": "carlini",
        "measured": 50.0,
        "measured_without_dds": 48.0,
        "delta": 2.0,
        "delta_ci95": "[-0.5, +4.5]",
        "n_images": 48,
        "outcome_by_radius": "8: inconclusive, 32: held",
    }
    rows = [
        {"claim": "a", "control": "", "outcome": "held", **numbers},
        {"claim": "b", "control": "", "outcome": "held", **numbers},
        {"claim": "c", "control": "", "outcome": "inconclusive", **numbers},
        {"claim": "d", "control": "", "outcome": "held", **numbers},
        {"claim": "e", "control": "", "outcome": "inconclusive", **numbers},
        {"claim": "f", "control": "identity", "outcome": "inconclusive", **numbers},  # a control: never listed
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "verdicts.csv", index=False)
    keep = {
        "a": Expected("vacuous", "old a", "a does not bite"),
        "b": Expected("inconclusive", "old b", "b is borderline", ("held",)),
        "e": Expected("inconclusive", "old e", "e has no effect"),
        "z": Expected("contradicted", "old z", "z was not measured here"),
    }
    text, changed = record_also_seen(tmp_path / "verdicts.csv", keep, "TEST-CPU", registered=set("abcdefz"))
    assert changed == ["a", "c"]
    path = tmp_path / "expectations.yaml"
    path.write_text(text)
    listed = load_expectations(path)
    assert listed["a"].outcome == "vacuous" and listed["a"].also_seen == ("held",) and listed["a"].measured == "old a"
    assert listed["a"].reason.startswith("a does not bite; also held on TEST-CPU: 50 with carlini DDS vs 48 without")
    assert listed["c"].outcome == "inconclusive" and listed["c"].also_seen == ("held",)
    assert "(TEST-CPU)" in listed["c"].measured and "contains 0" in listed["c"].reason
    assert {k: listed[k] for k in "bez"} == {k: keep[k] for k in "bez"} and "d" not in listed and "f" not in listed
