"""Known outcomes (claims/expectations.yaml) and how a verdict becomes a test result.

A claim's test passes when it is held. A claim measured not to hold (contradicted, inconclusive or
vacuous) fails unless expectations.yaml lists it with that exact outcome, the measured numbers and
the reason; then it is a strict xfail: if the outcome changes (it starts to hold, or fails in another
way) the test fails until the list is updated, so the list cannot go stale. Negative controls pass
when they are not held (`expect: not_held`), or are reported as findings (`expect: report`); the positive
control (the oracle, `expect: held`) passes when held or vacuous (nothing to decide) and fails otherwise. A negative
control judged with its family (every control claim of one kind on one experiment, `control_family_held`)
fails only when its effect also survives Holm-Bonferroni at 5% family-wise over that family: each claim's
interval alone has the criterion's per-claim false-alarm rate, so among tens of content-free controls a
few would hold by chance; what a control must show is that the criterion does not fire beyond chance.

A borderline claim whose outcome has been measured to differ between machines (a bound of its interval
sits at 0, and a change of machine or library build that moves the per-image rows a little moves the
bound across 0) lists the other outcomes seen under `also_seen`, with the
evidence in its reason; each of them is then accepted too (a held one passes, the others xfail), and the
test's message says the verdict is platform-sensitive. Any outcome not listed still fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.claims.evaluate import Verdict
from harness.claims.registry import CLAIMS_FILE, OUTCOMES

EXPECTATIONS_FILE = CLAIMS_FILE.parent / "expectations.yaml"
ENTRY_KEYS = {"outcome", "measured", "reason"}
OPTIONAL_KEYS = {"also_seen"}


@dataclass(frozen=True)
class Expected:
    outcome: str
    measured: str
    reason: str
    also_seen: tuple[str, ...] = ()  # other outcomes measured on other machines (a borderline claim)

    def accepts(self, outcome: str) -> bool:
        return outcome == self.outcome or outcome in self.also_seen


@dataclass(frozen=True)
class Decision:
    """What the claim's test does: 'pass', 'xfail' or 'fail', and the line it reports."""

    action: str
    message: str


def load_expectations(path: str | Path = EXPECTATIONS_FILE) -> dict[str, Expected]:
    """claim id -> Expected; every entry needs outcome (not 'held'), measured and reason; also_seen (optional)
    lists the other outcomes (held included) measured for it elsewhere."""
    path = Path(path)
    data = yaml.safe_load(path.read_text()) if path.is_file() else None
    out: dict[str, Expected] = {}
    for claim_id, entry in (data or {}).items():
        if not isinstance(entry, dict) or not ENTRY_KEYS <= set(entry) <= ENTRY_KEYS | OPTIONAL_KEYS:
            raise ValueError(
                f"{path}: entry {claim_id!r} needs exactly the keys {sorted(ENTRY_KEYS)} "
                f"(and optionally {sorted(OPTIONAL_KEYS)})"
            )
        if entry["outcome"] not in OUTCOMES or entry["outcome"] in ("held", "skipped"):
            raise ValueError(
                f"{path}: {claim_id}: outcome must be one of contradicted, inconclusive, vacuous; "
                f"got {entry['outcome']!r}"
            )
        also = entry.get("also_seen", [])
        also = [also] if isinstance(also, str) else list(also)
        if (not also and "also_seen" in entry) or any(
            o not in OUTCOMES or o in ("skipped", entry["outcome"]) for o in also
        ):
            raise ValueError(
                f"{path}: {claim_id}: also_seen must list other outcomes than {entry['outcome']!r} "
                f"(held, contradicted, inconclusive, vacuous); got {entry.get('also_seen')!r}"
            )
        out[claim_id] = Expected(
            str(entry["outcome"]), str(entry["measured"]), str(entry["reason"]), tuple(sorted(also))
        )
    return out


def control_family_held(verdicts: list[Verdict]) -> dict[str, bool]:
    """claim id -> whether a negative control's "held" survives Holm-Bonferroni (5% family-wise, one-sided
    p-values) over `verdicts`, its family: the controls of one kind measured on one experiment."""
    from harness.claims.uncertainty import holm

    judged = [v for v in verdicts if v.p_value is not None]  # a control without a p-value stays judged alone
    survives = {v.claim.id: r for v, r in zip(judged, holm([v.p_value for v in judged]), strict=True)}
    return {v.claim.id: v.held and survives.get(v.claim.id, True) for v in verdicts}


def decide(verdict: Verdict, expectations: dict[str, Expected], family_held: bool | None = None) -> Decision:
    """The test result of `verdict` given the known outcomes. family_held (negative controls): whether
    its "held" survives Holm over its control family (`control_family_held`); None judges it alone."""
    claim, summary = verdict.claim, verdict.summary()
    known = expectations.get(claim.id)
    if claim.control:
        if known is not None:
            return Decision("fail", f"{claim.id}: a control claim cannot be listed in expectations.yaml")
        if claim.expect == "report":
            return Decision("pass", f"{summary} [control reported as a finding]")
        if claim.expect == "held":
            if verdict.held:
                return Decision("pass", f"{summary} [positive control, held as it must be]")
            if verdict.outcome == "vacuous":
                return Decision("pass", f"{summary} [positive control: not decidable, the attack does not bite]")
            return Decision(
                "fail",
                f"{summary} -- the positive control does NOT hold this decidable claim: not even a purifier "
                "that restores the clean input could pass it",
            )
        if verdict.held and family_held is False:
            return Decision(
                "pass",
                f"{summary} [negative control: held on its own interval (one-sided p {verdict.p_value:.2g}) but "
                "not beyond chance: it does not survive Holm at 5% family-wise over its control family]",
            )
        if verdict.held:
            return Decision(
                "fail",
                f"{summary} -- a negative control HOLDS this claim: it cannot tell a real DDS "
                "or explanation from a fake one",
            )
        return Decision("pass", f"{summary} [negative control, not held as it must be]")
    if known is None:
        if verdict.held:
            return Decision("pass", summary)
        return Decision("fail", f"{summary} -- not held, and not listed in expectations.yaml")
    if verdict.outcome == known.outcome:
        return Decision("xfail", f"{summary} -- known {known.outcome}: {known.reason} (listed as: {known.measured})")
    if known.accepts(verdict.outcome):
        seen = ", ".join(sorted({known.outcome, *known.also_seen} - {verdict.outcome}))
        note = (
            f"platform-sensitive: {verdict.outcome} here, {seen} on other machines: {known.reason} "
            f"(listed as: {known.outcome}, {known.measured})"
        )
        return Decision("pass" if verdict.held else "xfail", f"{summary} -- {note}")
    return Decision(
        "fail",
        f"{summary} -- expectations.yaml lists it as {known.outcome} ({known.measured}); "
        f"now {verdict.outcome}: update the list",
    )


def _reason(row: dict) -> str:
    """A reason read off the measured numbers (edit it where more is known)."""
    metric, n = row["metric"], row.get("n_images")
    if row["outcome"] == "vacuous":
        flips = row.get("plain_predictions_flipped_pct")
        flipped = f"flips {flips:.0f}% of the plain predictions but " if flips == flips and flips is not None else ""
        ci = str(row["attack_degrades_plain_ci95"])
        upper = float(ci.strip("[]").split(",")[1]) if "," in ci else float("nan")
        effect = "improves" if upper < 0 else "does not measurably degrade"
        radius = row.get("radius_255")
        at = f" at {radius:g}/255" if isinstance(radius, float) and radius == radius else ""
        return (
            f"the attack {flipped}{effect} the plain method's {metric}{at} "
            f"(degradation {row['attack_degrades_plain_by']:+.4g}, CI {ci}){_curve(row)}: no robustness to restore"
        )
    if row["outcome"] == "inconclusive":
        return (
            f"no measurable effect of DDS on {n:.0f} images: the delta's CI {row['delta_ci95']} contains 0{_curve(row)}"
        )
    return f"DDS moves {metric} the other way than claimed, beyond sampling noise (CI {row['delta_ci95']}){_curve(row)}"


def _curve(row: dict) -> str:
    """'; by radius: 8: vacuous, 32: held' for a claim judged along the radius axis, else ''."""
    curve = row.get("outcome_by_radius")
    return f"; by radius: {curve}" if isinstance(curve, str) and curve else ""


def _measured(row: dict) -> str:
    return (
        f"{row['measured']:.4g} with {row['dds']} DDS vs {row['measured_without_dds']:.4g} without, "
        f"delta {row['delta']:+.4g} CI {row['delta_ci95']}, {row['n_images']:.0f} images"
    )


def _entry(expected: Expected) -> dict:
    entry = {"outcome": expected.outcome, "measured": expected.measured, "reason": expected.reason}
    return {**entry, "also_seen": list(expected.also_seen)} if expected.also_seen else entry


def _render(entries: dict[str, dict]) -> str:
    """expectations.yaml text: the file's header comment, then the entries."""
    header = EXPECTATIONS_FILE.read_text().split("\n\n", 1)[0] if EXPECTATIONS_FILE.is_file() else ""
    return header.rstrip() + "\n\n" + yaml.safe_dump(entries, sort_keys=True, width=110)


def record_also_seen(
    verdicts_csv: str | Path, keep: dict[str, Expected], platform: str, registered: set[str] | None = None
) -> tuple[str, list[str]]:
    """(expectations.yaml text, the claims it changed): the entries `keep`, plus this machine's outcome where it
    is one they do not accept, as a borderline claim's `also_seen`, its numbers added to the reason under
    `platform` (a claim held elsewhere and not held here gets an entry with also_seen held). For a second numerics
    draw (another CPU, or ATEN_CPU_CAPABILITY) of the same tree: nothing listed before is dropped or rewritten."""
    import pandas as pd

    table = pd.read_csv(verdicts_csv, keep_default_na=False, na_values=[""])
    if registered is None:
        from harness.claims.registry import load_claims

        registered = {c.id for c in load_claims()}
    entries = {claim_id: _entry(e) for claim_id, e in keep.items()}
    changed = []
    rows = table[(table["control"].fillna("") == "") & table["claim"].isin(registered)]
    for row in rows[rows["outcome"] != "skipped"].to_dict("records"):
        claim_id, outcome = row["claim"], row["outcome"]
        old = keep.get(claim_id)
        if (old is None and outcome == "held") or (old is not None and old.accepts(outcome)):
            continue
        seen = f"{outcome} on {platform}: {_measured(row)}{_curve(row)}"
        if old is None:
            entries[claim_id] = {
                "outcome": outcome,
                "measured": f"{_measured(row)} ({platform})",
                "reason": f"platform-sensitive: held on the machines measured before; {outcome} on {platform}: "
                f"{_reason(row)}",
                "also_seen": ["held"],
            }
        else:
            entries[claim_id] = {
                **_entry(old),
                "reason": f"{old.reason}; also {seen}",
                "also_seen": sorted({*old.also_seen, outcome}),
            }
        changed.append(claim_id)
    return _render(entries), changed


def numerics_draw() -> str:
    """What decides the CPU float results a verdict rests on: the CPU model and torch's CPU kernel set."""
    import torch

    from harness.runner.devices import cpu_model

    return f"{cpu_model() or 'unknown CPU'}, torch CPU kernels {torch.backends.cpu.get_cpu_capability()}"


def draft_expectations(
    verdicts_csv: str | Path, keep: dict[str, Expected] | None = None, registered: set[str] | None = None
) -> str:
    """expectations.yaml text for every non-control claim of a verdict table that was not held and is in the
    claims registry (`registered`: its ids, None = claims/claims.yaml's; the beyond-the-papers checks of
    claims/test_beyond.py carry their own expectations).

    Measured strings come from the table; a claim already listed with the same outcome keeps its reason. A
    borderline claim (listed with `also_seen`) whose outcome is one it lists keeps its entry: its outcome
    becomes the one measured now and the others stay in also_seen, held included (so it is listed while held).
    """
    import pandas as pd

    table = pd.read_csv(verdicts_csv, keep_default_na=False, na_values=[""])
    keep = keep or {}
    if registered is None:
        from harness.claims.registry import load_claims

        registered = {c.id for c in load_claims()}
    todo = table[
        (table["control"].fillna("") == "")
        & table["claim"].isin(registered)
        & table["outcome"].isin(["contradicted", "inconclusive", "vacuous"])
    ]
    entries = {}
    for row in todo.to_dict("records"):
        old = keep.get(row["claim"])
        measured = _measured(row)
        if old is not None and old.also_seen and old.accepts(row["outcome"]):
            also = sorted({old.outcome, *old.also_seen} - {row["outcome"]})
            entries[row["claim"]] = {"outcome": row["outcome"], "measured": measured, "reason": old.reason}
            entries[row["claim"]]["also_seen"] = also
            continue
        reason = old.reason if old is not None and old.outcome == row["outcome"] else _reason(row)
        entries[row["claim"]] = {"outcome": row["outcome"], "measured": measured, "reason": reason}
    held_now = set(table.loc[table["outcome"] == "held", "claim"])
    for claim_id, old in keep.items():  # a borderline claim held now stays listed, with its other outcomes
        if claim_id in held_now and "held" in old.also_seen and claim_id in registered:
            entries[claim_id] = _entry(old)
    return _render(entries)
