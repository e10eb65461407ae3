"""Every claim of claims/claims.yaml as one parametrized test.

Paper-scale claims are marked `gpu` and skip, naming each missing file and the variable that
points to it. Embedded-world claims are analogues run on CPU. A claim passes when it is held (its
interval says so); one measured not to hold fails unless claims/expectations.yaml lists its outcome
(then a strict xfail); negative controls pass when they are not held (`harness.claims.expectations`).
"""

from __future__ import annotations

import pytest

from claims.conftest import record, record_skip, verdict_of
from harness.claims.build import ADAPTIVE_ATTACK, COST_DATASET
from harness.claims.expectations import control_family_held, decide, load_expectations
from harness.claims.paper import DATASET_OF, missing_inputs
from harness.claims.registry import Claim, load_claims

EXPECTATIONS = load_expectations()
CLAIMS = load_claims()


# Embedded claims measured in an experiment of their own (claims/conftest.py), by control; the rest (the
# baseline_maps controls included) share `embedded_tables`. noise_only is a finding, not a negative control:
# its experiment runs with -m slow.
EMBEDDED_FIXTURE = {"noise_only": "embedded_noise_only_tables"}
SLOW_CONTROLS = ("noise_only",)
# The adaptive attack through DDS (beyond the papers) is the costliest experiment (~65-90 s on 2 cores): its
# claims and their identity control run with -m slow, in the nightly's claims step, not in the default suite.
# Negative controls are judged with their family (same control, same experiment): its verdicts, and claim id ->
# held beyond chance, evaluated once per family.
_FAMILIES: dict[tuple[str, int], tuple[dict, dict[str, bool]]] = {}


def _judge(claim: Claim, tables: dict):
    """The claim's verdict and, for a negative control, whether its "held" survives Holm over its family."""
    if not claim.control or claim.expect != "not_held":
        return verdict_of(claim, tables), None
    key = (claim.control, id(tables))
    if key not in _FAMILIES:
        family = [
            verdict_of(c, tables)
            for c in CLAIMS
            if (c.control, c.world, c.kind, c.dataset) == (claim.control, claim.world, claim.kind, claim.dataset)
        ]
        _FAMILIES[key] = ({v.claim.id: v for v in family}, control_family_held(family))
    verdicts, held = _FAMILIES[key]
    return verdicts[claim.id], held[claim.id]


def _param(claim: Claim):
    marks = [pytest.mark.claim]
    if claim.world == "paper":
        marks.append(pytest.mark.gpu)
    if claim.control in SLOW_CONTROLS or claim.attack == ADAPTIVE_ATTACK:
        marks.append(pytest.mark.slow)
    return pytest.param(claim, id=claim.id, marks=marks)


def test_expectations_name_existing_claims():
    unknown = sorted(set(EXPECTATIONS) - {c.id for c in CLAIMS})
    assert not unknown, f"claims/expectations.yaml lists claims that do not exist: {unknown}"


@pytest.mark.parametrize("claim", [_param(c) for c in CLAIMS])
def test_claim(claim: Claim, request):
    if claim.world == "paper":
        missing = missing_inputs(claim)
        if missing:
            reason = "paper-scale inputs missing: " + "; ".join(missing)
            record_skip(claim, reason)
            pytest.skip(reason)
    if claim.dataset == COST_DATASET:
        tables = request.getfixturevalue("cost_tables")(claim.world)
    elif claim.attack == ADAPTIVE_ATTACK:
        tables = request.getfixturevalue("embedded_adaptive_tables")
    elif claim.world == "paper":
        tables = request.getfixturevalue("paper_tables")(DATASET_OF.get(claim.dataset, claim.dataset))
    else:
        tables = request.getfixturevalue(EMBEDDED_FIXTURE.get(claim.control, "embedded_tables"))
    verdict, family_held = _judge(claim, tables)
    decision = decide(verdict, EXPECTATIONS, family_held)
    print(decision.message)
    record(
        verdict,
        {"pass": "passed", "xfail": "xfailed", "fail": "failed"}[decision.action],
        "" if decision.action == "pass" else decision.message.rsplit(" -- ", 1)[-1],
        tables.get("run"),
    )
    if decision.action == "xfail":
        pytest.xfail(decision.message)
    if decision.action == "fail":
        pytest.fail(decision.message)
