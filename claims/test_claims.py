"""Every claim of claims/claims.yaml as one parametrized test.

Paper-scale claims are marked `gpu` and skip, naming each missing file and the variable that
points to it. Embedded-world claims are analogues run on CPU; a claim known not to hold there is
listed in claims/expectations.yaml and runs as a strict xfail carrying its measured numbers; one
whose effect is within sampling noise is listed there too, and must stay within the noise.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from claims.conftest import record, record_skip
from harness.claims.build import ADAPTIVE_ATTACK, COST_DATASET
from harness.claims.evaluate import evaluate
from harness.claims.paper import DATASET_OF, missing_inputs
from harness.claims.registry import Claim, load_claims

EXPECTATIONS = yaml.safe_load((Path(__file__).parent / "expectations.yaml").read_text()) or {}
KNOWN_NOT_HOLDING: dict[str, str] = EXPECTATIONS.get("does_not_hold", {}) or {}
WITHIN_NOISE: dict[str, str] = EXPECTATIONS.get("within_noise", {}) or {}


def _param(claim: Claim):
    marks = [pytest.mark.claim]
    if claim.world == "paper":
        marks.append(pytest.mark.gpu)
    return pytest.param(claim, id=claim.id, marks=marks)


CLAIMS = load_claims()


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
        tables = request.getfixturevalue("embedded_tables")
    verdict = evaluate(claim, tables)
    print(verdict.summary())
    noisy = WITHIN_NOISE.get(claim.id)
    if noisy is not None:
        # Expected: no effect measurable on these images. That expectation can fail too: when the
        # interval of delta excludes 0 (a real effect, either way), the list must be updated.
        if verdict.interval is None or not verdict.interval[0] <= 0.0 <= verdict.interval[1]:
            record(verdict, "failed", "listed as within sampling noise in expectations.yaml but is not")
            pytest.fail(f"{verdict.summary()} -- expected within sampling noise ({noisy}); update expectations.yaml")
        if not verdict.held:
            record(verdict, "xfailed", noisy)
            pytest.xfail(f"{verdict.summary()} -- within sampling noise: {noisy}")
    known = KNOWN_NOT_HOLDING.get(claim.id)
    if known is not None:
        if verdict.held:
            record(verdict, "failed", "listed as not holding in expectations.yaml but held: update the list")
            pytest.fail(f"{verdict.summary()} -- expected not to hold ({known}); remove it from expectations.yaml")
        record(verdict, "xfailed", known)
        pytest.xfail(f"{verdict.summary()} -- known departure: {known}")
    record(verdict)
    assert verdict.held, verdict.summary()
