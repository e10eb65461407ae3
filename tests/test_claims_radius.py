"""The radius axis: a robustness claim is judged at every attacked radius, then summarised (Holm over radii)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from harness.claims.evaluate import Verdict, attacked_radii, evaluate, summarise_radii
from harness.claims.expectations import decide
from harness.claims.registry import DROP_RELATION
from harness.claims.uncertainty import holm, holm_adjusted
from tests.test_claims_registry import _claim


def _rows(harm: dict[float, float], gain: dict[float, float], n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Per-image segmentation rows without DDS, with carlini and with the oracle (the clean rows of the plain
    method) at radius 0 and each radius of `harm`: the attack lowers the plain quality by harm[r]; carlini
    gives back gain[r] of it."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        base = rng.uniform(0.5, 0.9)
        clean = float(np.clip(base + rng.normal(0, 0.03), 0, 1))
        for radius in (0.0, *harm):
            hurt = radius > 0 and harm[radius] != 0  # an attack without harm leaves the plain rows as they are
            plain = float(np.clip(clean - harm[radius] + rng.normal(0, 0.03), 0, 1)) if hurt else clean
            dds = clean if radius == 0 else float(np.clip(plain + gain[radius] + rng.normal(0, 0.03), 0, 1))
            for variant, q in (("none", plain), ("carlini", dds), ("oracle", clean)):
                rows.append(
                    {
                        "item_id": f"i{i:03d}",
                        "method": "rollout",
                        "dds": variant,
                        "radius_255": radius,
                        "pred": int(radius > 0),
                        "label": 0,
                        "clean_pred": 0,
                        "correct": 1000 * q,
                        "labeled": 1000.0,
                        "inter_bg": 500 * q,
                        "union_bg": 600.0,
                        "inter_fg": 300 * q,
                        "union_fg": 300.0,
                        "ap": q,
                        "topk_overlap": None if radius == 0 else q,
                    }
                )
    return pd.DataFrame(rows)


def _judge(rows: pd.DataFrame, dds: str = "carlini", **kw) -> Verdict:
    return evaluate(_claim(dds=dds, **kw), {"rows": rows}, resamples=400)


def test_every_attacked_radius_is_judged_and_the_headline_keeps_its_numbers():
    rows = _rows({4.0: 0.0, 8.0: 0.2, 32.0: 0.3}, {4.0: 0.0, 8.0: 0.2, 32.0: 0.3})
    v = _judge(rows)
    assert attacked_radii(v.claim, rows) == [4.0, 8.0, 32.0]
    assert [r.radius_255 for r in v.by_radius] == [4.0, 8.0, 32.0]
    assert v.radius_curve == "4: vacuous, 8: held, 32: held" and v.decidable_radii == (8.0, 32.0)
    assert v.outcome == "held" and v.delta == v.by_radius[1].delta  # the headline radius's numbers
    assert v.p_value == pytest.approx(max(holm_adjusted([r.p_value for r in v.by_radius[1:]])))


def test_a_claim_vacuous_at_its_headline_radius_is_decided_where_the_attack_bites():
    rows = _rows({8.0: 0.0, 32.0: 0.3}, {8.0: 0.0, 32.0: 0.3})
    v = _judge(rows)
    assert v.by_radius[0].outcome == "vacuous" and v.outcome == "held"
    at32 = v.by_radius[1]
    assert at32.interval[0] > 0  # the row shows 8/255's numbers; the reason gives the interval it is held on
    assert "the headline 8/255 does not bite" in v.reason
    assert f"32/255 held: delta {at32.delta:+.4g} CI [{at32.interval[0]:+.4g}, {at32.interval[1]:+.4g}]" in v.reason


def test_held_needs_every_biting_radius():
    rows = _rows({8.0: 0.2, 32.0: 0.3}, {8.0: 0.2, 32.0: 0.0})  # DDS repairs the small attack, not the large one
    v = _judge(rows)
    assert v.radius_curve == "8: held, 32: inconclusive" and v.outcome == "inconclusive"


def test_contradicted_at_one_radius_is_contradicted():
    rows = _rows({8.0: 0.2, 32.0: 0.3}, {8.0: 0.2, 32.0: -0.2})  # DDS makes the large attack worse
    assert _judge(rows).outcome == "contradicted"


def test_vacuous_when_the_attack_bites_at_no_radius():
    rows = _rows({8.0: 0.0, 32.0: 0.0}, {8.0: 0.0, 32.0: 0.0})
    v = _judge(rows)
    assert v.outcome == "vacuous" and "any of radii 8, 32/255" in v.reason


def test_a_bite_that_does_not_survive_holm_over_the_radii_is_vacuous():
    claim = _claim()

    def at(radius: float, bite_p: float) -> Verdict:
        return Verdict(
            dataclasses.replace(claim, radius_255=radius),
            "held",
            delta=1.0,
            interval=(0.5, 1.5),
            p_value=0.001,
            bite=1.0,
            bite_interval=(0.1, 2.0),
            bite_p=bite_p,
        )

    # Alone, p = 0.03 would count; beside a second radius at p = 0.04 Holm needs the smaller under 0.025.
    v = summarise_radii(claim, [at(8.0, 0.03), at(16.0, 0.04)])
    assert [r.outcome for r in v.by_radius] == ["vacuous", "vacuous"] and v.outcome == "vacuous"
    assert "Holm" in v.by_radius[0].reason
    assert summarise_radii(claim, [at(8.0, 0.03)]).outcome == "held"
    assert summarise_radii(claim, [at(8.0, 0.02), at(16.0, 0.04)]).outcome == "held"


@pytest.mark.parametrize("relation", ["dds >= none", DROP_RELATION])
def test_the_oracle_holds_exactly_the_decidable_claims(relation):
    rows = _rows({4.0: 0.0, 8.0: 0.15, 32.0: 0.3}, {4.0: 0.0, 8.0: 0.0, 32.0: 0.0})
    oracle = _judge(rows, "oracle", relation=relation)
    plain_fix = _judge(rows, relation=relation)  # carlini gives nothing back here
    assert oracle.outcome == "held" and oracle.decidable_radii == (8.0, 32.0)
    assert plain_fix.outcome == "inconclusive"
    vacuous = _judge(_rows({8.0: 0.0}, {8.0: 0.0}), "oracle", relation=relation)
    assert vacuous.outcome == "vacuous"


def test_a_positive_control_must_hold_where_decidable():
    rows = _rows({8.0: 0.2}, {8.0: 0.0})
    held = _judge(rows, "oracle", control="oracle", expect="held")
    assert decide(held, {}).action == "pass"
    # A "positive control" that does nothing (here: carlini giving nothing back) fails the test.
    not_held = _judge(rows, "carlini", control="oracle", expect="held")
    assert not_held.outcome == "inconclusive" and decide(not_held, {}).action == "fail"
    vacuous = _judge(_rows({8.0: 0.0}, {8.0: 0.0}), "oracle", control="oracle", expect="held")
    assert decide(vacuous, {}).action == "pass"


@pytest.mark.parametrize("seed", range(20))
def test_holm_adjusted_p_values_agree_with_holm(seed):
    p = list(np.random.default_rng(seed).uniform(0, 0.08, size=5))
    assert [a <= 0.05 for a in holm_adjusted(p)] == holm(p)


def test_the_radius_curves_are_tabled_and_drawn(tmp_path):
    from harness.claims.verdicts import radius_rows
    from harness.report.radius_curves import radius_curve_figure

    rows = _rows({8.0: 0.2, 32.0: 0.3}, {8.0: 0.2, 32.0: 0.0})
    v = _judge(rows)
    curves = pd.DataFrame(radius_rows(v, {"name": "x"}))
    assert curves["radius_255"].tolist() == [8.0, 32.0]
    assert curves["outcome_at_radius"].tolist() == ["held", "inconclusive"]
    assert (curves["claim_outcome"] == "inconclusive").all() and (curves["bite_lo"] > 0).all()
    path = radius_curve_figure(curves, tmp_path / "curves.png")
    assert path is not None and path.stat().st_size > 10_000
    assert radius_curve_figure(curves[curves["radius_255"] == 8.0], tmp_path / "one.png") is None  # one radius
