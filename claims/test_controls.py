"""The claims can fail: replacing DDS by the identity fails every relation claim of the embedded world,
the adaptive-attack claims included (their experiment attacks through the identity too; with -m slow, as
those claims).

The per-claim negative controls (identity DDS, baseline maps, noise only) are rows of claims.yaml run
by test_claims.py; this test checks the whole suite's logic at once on the real analogue experiment:
with the identity in place of DDS and nothing listed in expectations.yaml, no relation claim passes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from harness.claims.build import ADAPTIVE_ATTACK
from harness.claims.evaluate import evaluate
from harness.claims.expectations import decide
from harness.claims.registry import Claim, load_claims


def _relation_claims(adaptive: bool) -> list[Claim]:
    return [
        c
        for c in load_claims()
        if c.world == "embedded"
        and c.kind == "relation"
        and not c.control
        and (c.attack == ADAPTIVE_ATTACK) == adaptive
    ]


def _identity_passes(claims: list[Claim], tables_of: Callable[[Claim], dict]) -> list[str]:
    """The summaries of the claims that still pass with the identity swapped in for their DDS variant."""
    passed = []
    for claim in claims:
        verdict = evaluate(dataclasses.replace(claim, dds="identity"), tables_of(claim), resamples=500)
        if decide(verdict, {}).action != "fail":
            passed.append(verdict.summary())
    return passed


@pytest.mark.claim
def test_identity_dds_fails_every_embedded_relation_claim(embedded_tables, cost_tables):
    claims = _relation_claims(adaptive=False)
    assert len(claims) >= 80
    passed = _identity_passes(claims, lambda c: cost_tables("embedded") if c.claim == "re-4" else embedded_tables)
    assert not passed, "claims an identity 'DDS' passes:\n" + "\n".join(passed)


@pytest.mark.claim
@pytest.mark.slow  # the adaptive experiment runs with its claims (claims/test_claims.py)
def test_identity_dds_fails_every_adaptive_claim(embedded_adaptive_tables):
    claims = _relation_claims(adaptive=True)
    assert len(claims) == 8
    passed = _identity_passes(claims, lambda c: embedded_adaptive_tables)
    assert not passed, "adaptive claims an identity 'DDS' passes:\n" + "\n".join(passed)


def _robustness_claims(control: str = "") -> list[Claim]:
    return [
        c
        for c in load_claims()
        if c.world == "embedded" and c.robustness and c.control == control and c.attack != ADAPTIVE_ATTACK
    ]


# The embedded world must be able to answer its questions (docs/PROTOCOL.md section 1): at one radius or more
# the attack bites for at least this share of the robustness claims, and the oracle (a purifier that restores
# the clean input) holds at least this share of the decidable ones.
MIN_DECIDABLE = 0.9
MIN_ORACLE_POWER = 0.9


@pytest.mark.claim
@pytest.mark.xfail(
    strict=True,
    reason="measured 2026-12-04 on the claims' 48 images at radii 8 and 32/255: 62 of 88 robustness claims (70%) "
    "decidable, the target is 90%. Vacuous: 20 of the 22 of attention GradCAM and full LRP (clean maps no better "
    "than a content-free map, so an attack has nothing to take; claims/test_world.py), and 4-6 of the six "
    "separated methods' 66 (rollout's two perturbation AUCs, Transformer Attribution's negative AUC, borderline "
    "between numerics draws: the attack moves their maps too little at these radii; adding 16 and 64/255 decides "
    "2 more, 66 of 88). The separated methods' share is tested below. If it passes, remove this mark.",
)
def test_the_world_decides_its_robustness_claims(embedded_tables):
    from claims.conftest import verdict_of

    claims = _robustness_claims()
    assert len(claims) >= 80
    verdicts = [verdict_of(c, embedded_tables) for c in claims]
    vacuous = [v for v in verdicts if v.outcome == "vacuous"]
    share = 1 - len(vacuous) / len(verdicts)
    assert share >= MIN_DECIDABLE, (
        f"only {share:.0%} of the {len(verdicts)} embedded robustness claims are decidable at some radius "
        f"(needs {MIN_DECIDABLE:.0%}); vacuous at every radius:\n" + "\n".join(v.claim.id for v in vacuous)
    )


@pytest.mark.claim
def test_the_world_decides_the_claims_of_the_methods_it_separates(embedded_tables):
    """The target above, on the methods whose clean maps beat every baseline map on every separation metric
    (measured here, claims/test_world.py): an attack can only take from a map what it carries, so a method no
    better than a content-free map leaves its claims vacuous; for the others the world must decide them."""
    from claims.conftest import verdict_of
    from harness.claims.build import BASELINE_MAPS, METHODS
    from harness.report.separation import separation_table

    table = separation_table(embedded_tables["rows"], METHODS, BASELINE_MAPS)
    separated = list(table.loc[table["beats every baseline map"] == "yes", "method"])
    assert len(separated) >= 4, f"only {separated} beat every baseline map on clean images"
    verdicts = [verdict_of(c, embedded_tables) for c in _robustness_claims() if c.method in separated]
    vacuous = [v.claim.id for v in verdicts if v.outcome == "vacuous"]
    share = 1 - len(vacuous) / len(verdicts)
    assert share >= MIN_DECIDABLE, (
        f"only {share:.0%} of the {len(verdicts)} robustness claims of the separated methods {separated} are "
        f"decidable at some radius (needs {MIN_DECIDABLE:.0%}); vacuous at every radius:\n" + "\n".join(vacuous)
    )


@pytest.mark.claim
def test_the_oracle_holds_the_decidable_claims(embedded_tables):
    """The positive control's power: the oracle's claim rows (claims.yaml, control oracle) on the same experiment."""
    from claims.conftest import verdict_of

    oracle = [verdict_of(c, embedded_tables) for c in _robustness_claims("oracle")]
    assert len(oracle) >= 80
    decidable = [v for v in oracle if v.outcome != "vacuous"]
    held = [v for v in decidable if v.held]
    assert decidable and len(held) >= MIN_ORACLE_POWER * len(decidable), (
        f"the oracle holds {len(held)} of {len(decidable)} decidable claims (needs {MIN_ORACLE_POWER:.0%}):\n"
        + "\n".join(v.summary() for v in decidable if not v.held)
    )
