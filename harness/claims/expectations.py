"""Known outcomes (claims/expectations.yaml) and how a verdict becomes a test result.

A claim's test passes when it is held. A claim measured not to hold (contradicted, inconclusive or
vacuous) fails unless expectations.yaml lists it with that exact outcome, the measured numbers and
the reason; then it is a strict xfail: if the outcome changes (it starts to hold, or fails in another
way) the test fails until the list is updated, so the list cannot go stale. Negative controls pass
when they are not held (`expect: not_held`), or are reported as findings (`expect: report`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.claims.evaluate import Verdict
from harness.claims.registry import CLAIMS_FILE, OUTCOMES

EXPECTATIONS_FILE = CLAIMS_FILE.parent / "expectations.yaml"
ENTRY_KEYS = {"outcome", "measured", "reason"}


@dataclass(frozen=True)
class Expected:
    outcome: str
    measured: str
    reason: str


@dataclass(frozen=True)
class Decision:
    """What the claim's test does: 'pass', 'xfail' or 'fail', and the line it reports."""

    action: str
    message: str


def load_expectations(path: str | Path = EXPECTATIONS_FILE) -> dict[str, Expected]:
    """claim id -> Expected; every entry needs outcome (not 'held'), measured and reason."""
    path = Path(path)
    data = yaml.safe_load(path.read_text()) if path.is_file() else None
    out: dict[str, Expected] = {}
    for claim_id, entry in (data or {}).items():
        if not isinstance(entry, dict) or set(entry) != ENTRY_KEYS:
            raise ValueError(f"{path}: entry {claim_id!r} needs exactly the keys {sorted(ENTRY_KEYS)}")
        if entry["outcome"] not in OUTCOMES or entry["outcome"] in ("held", "skipped"):
            raise ValueError(f"{path}: {claim_id}: outcome must be one of contradicted, inconclusive, vacuous; "
                             f"got {entry['outcome']!r}")
        out[claim_id] = Expected(str(entry["outcome"]), str(entry["measured"]), str(entry["reason"]))
    return out


def decide(verdict: Verdict, expectations: dict[str, Expected]) -> Decision:
    """The test result of `verdict` given the known outcomes."""
    claim, summary = verdict.claim, verdict.summary()
    known = expectations.get(claim.id)
    if claim.control:
        if known is not None:
            return Decision("fail", f"{claim.id}: a control claim cannot be listed in expectations.yaml")
        if claim.expect == "report":
            return Decision("pass", f"{summary} [control reported as a finding]")
        if verdict.held:
            return Decision("fail", f"{summary} -- a negative control HOLDS this claim: it cannot tell a real DDS "
                                    "or explanation from a fake one")
        return Decision("pass", f"{summary} [negative control, not held as it must be]")
    if known is None:
        if verdict.held:
            return Decision("pass", summary)
        return Decision("fail", f"{summary} -- not held, and not listed in expectations.yaml")
    if verdict.outcome == known.outcome:
        return Decision("xfail", f"{summary} -- known {known.outcome}: {known.reason} (listed as: {known.measured})")
    return Decision("fail", f"{summary} -- expectations.yaml lists it as {known.outcome} ({known.measured}); "
                            f"now {verdict.outcome}: update the list")
