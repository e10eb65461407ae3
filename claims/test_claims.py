"""Every claim of claims/claims.yaml as one parametrized test.

Paper-scale claims are marked `gpu` and skip, naming each missing file and the variable that
points to it. Embedded-world claims are analogues run on CPU; a claim known not to hold there is
listed in claims/expectations.yaml and runs as a strict xfail carrying its measured numbers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from claims.conftest import record, record_skip
from harness.claims.evaluate import evaluate
from harness.claims.paper import DATASET_OF, missing_inputs
from harness.claims.registry import Claim, load_claims

EXPECTATIONS = yaml.safe_load((Path(__file__).parent / "expectations.yaml").read_text()) or {}
KNOWN_NOT_HOLDING: dict[str, str] = EXPECTATIONS.get("does_not_hold", {}) or {}


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
        tables = request.getfixturevalue("paper_tables")(DATASET_OF.get(claim.dataset, claim.dataset))
    else:
        tables = request.getfixturevalue("embedded_tables")
    verdict = evaluate(claim, tables)
    print(verdict.summary())
    known = KNOWN_NOT_HOLDING.get(claim.id)
    if known is not None:
        if verdict.held:
            record(verdict, "failed", "listed as not holding in expectations.yaml but held: update the list")
            pytest.fail(f"{verdict.summary()} -- expected not to hold ({known}); remove it from expectations.yaml")
        record(verdict, "xfailed", known)
        pytest.xfail(f"{verdict.summary()} -- known departure: {known}")
    record(verdict)
    assert verdict.held, verdict.summary()
