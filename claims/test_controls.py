"""The claims can fail: replacing DDS by the identity fails every relation claim of the embedded world,
the adaptive-attack claims included (their experiment attacks through the identity too).

The per-claim negative controls (identity DDS, baseline maps, noise only) are rows of claims.yaml run
by test_claims.py; this test checks the whole suite's logic at once on the real analogue experiment:
with the identity in place of DDS and nothing listed in expectations.yaml, no relation claim passes.
"""

from __future__ import annotations

import dataclasses

import pytest

from harness.claims.build import ADAPTIVE_ATTACK
from harness.claims.evaluate import evaluate
from harness.claims.expectations import decide
from harness.claims.registry import load_claims


@pytest.mark.claim
def test_identity_dds_fails_every_embedded_relation_claim(embedded_tables, embedded_adaptive_tables, cost_tables):
    claims = [c for c in load_claims() if c.world == "embedded" and c.kind == "relation" and not c.control]
    assert len(claims) >= 80 and sum(c.attack == ADAPTIVE_ATTACK for c in claims) == 8
    passed = []
    for claim in claims:
        fake = dataclasses.replace(claim, dds="identity")
        if claim.claim == "re-4":
            tables = cost_tables("embedded")
        else:
            tables = embedded_adaptive_tables if claim.attack == ADAPTIVE_ATTACK else embedded_tables
        verdict = evaluate(fake, tables, resamples=500)
        if decide(verdict, {}).action != "fail":
            passed.append(verdict.summary())
    assert not passed, "claims an identity 'DDS' passes:\n" + "\n".join(passed)
