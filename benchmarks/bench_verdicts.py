"""Verdict history: what the claims conclude, tracked per commit beside what they cost.

asv `track_` benchmarks read the verdict table the claims suite wrote (reports/claims/verdicts.csv, from its
cached embedded experiment; the nightly runs the claims just before asv; `FVIT_VERDICTS_CSV` names another
table) and record, per commit:
- `ClaimEffect` (params: claim group x method), each embedded relation claim's effect `delta` and the bounds
  of its 95% paired-bootstrap interval `delta_ci95`, in the claim metric's own unit (percent points for
  segmentation, Chefer's AUC x100 for the perturbation test, a fraction for top-k overlap);
- `ClaimOutcomes` (params: claim group), how many of the group's methods are held / inconclusive / vacuous /
  contradicted.
A claim group is claim, form and metric (`fvit-1 level pixel_accuracy`): the rows `fvit-bench run` prints.
Controls are left out. The grids come from claims/claims.yaml, so they do not depend on the table present;
a claim the table lacks is recorded as missing (NaN). A table stamped with another commit than HEAD (its
`commit` column) is not recorded: setup raises NotImplementedError, which asv reports as skipped.
Columns are read by name; others are ignored.
"""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import pandas as pd

from harness.claims.registry import WORK_RELATION, load_claims

ROOT = Path(__file__).resolve().parents[1]
VERDICTS_ENV = "FVIT_VERDICTS_CSV"
DEFAULT_VERDICTS = ROOT / "reports" / "claims" / "verdicts.csv"
OUTCOMES = ("held", "inconclusive", "vacuous", "contradicted")
EFFECT_UNIT = "effect (the metric's unit)"
SKIP = "__skip__"


def group_key(claim) -> str:
    """'fvit-1 level pixel_accuracy': the claim, the form of its relation, its metric."""
    form = claim.table.removeprefix("relation (").removesuffix(")")
    return f"{claim.claim} {form} {claim.metric}"


def tracked_claims() -> dict[tuple[str, str], str]:
    """(group, method) -> claim id, for the embedded world's relation claims (no controls, no cost claims)."""
    return {
        (group_key(c), c.method): c.id
        for c in load_claims()
        if c.world == "embedded" and c.kind == "relation" and not c.control and c.relation != WORK_RELATION
    }


CLAIMS = tracked_claims()
GROUPS = sorted({g for g, _ in CLAIMS})
METHODS = sorted({m for _, m in CLAIMS})


def verdicts_path() -> Path:
    return Path(os.environ.get(VERDICTS_ENV) or DEFAULT_VERDICTS)


def _head(root: Path = ROOT) -> str | None:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def parse_interval(text: object) -> tuple[float, float]:
    """'[-1.23, +4.5]' (the verdict table's delta_ci95) -> (-1.23, 4.5); empty -> (nan, nan)."""
    if not isinstance(text, str) or not text.strip():
        return math.nan, math.nan
    low, high = text.strip().strip("[]").split(",")
    return float(low), float(high)


def load_verdicts(path: Path | None = None, head: str | None = None) -> dict[str, dict]:
    """Claim id -> {delta, ci95_low, ci95_high, outcome} from a verdict table.

    head: the commit being recorded (default: git HEAD); a table whose `commit` column names another
    commit raises NotImplementedError (asv: skipped), so a stale table is never recorded under this commit."""
    path = path or verdicts_path()
    if not path.is_file():
        raise NotImplementedError(f"no verdict table at {path}: run `pytest claims` first (or set {VERDICTS_ENV})")
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    head = head or _head()
    if "commit" in table.columns and head:
        stamped = {str(c) for c in table["commit"].dropna().unique()}
        if stamped and not all(head.startswith(c) for c in stamped):
            raise NotImplementedError(f"{path} was written at commit(s) {sorted(stamped)}, not at {head}")
    out = {}
    for row in table.to_dict("records"):
        low, high = parse_interval(row.get("delta_ci95"))
        delta = row.get("delta")
        out[str(row["claim"])] = {
            "delta": math.nan if delta is None or pd.isna(delta) else float(delta),
            "ci95_low": low,
            "ci95_high": high,
            "outcome": str(row.get("outcome", "")),
        }
    return out


def cached_verdicts() -> dict[str, dict]:
    """asv's setup_cache: the verdicts, or why there are none (setup_cache cannot skip; `check_cache` does)."""
    try:
        return load_verdicts()
    except NotImplementedError as why:
        return {SKIP: {"reason": str(why)}}


def check_cache(cache: dict[str, dict]) -> None:
    """asv's setup: NotImplementedError (asv: skipped, with the reason) when there was no table to record."""
    if SKIP in cache:
        raise NotImplementedError(cache[SKIP]["reason"])


class ClaimEffect:
    """Each embedded relation claim's effect and its 95% interval bounds, per commit."""

    params = (GROUPS, METHODS)
    param_names = ["group", "method"]
    timeout = 60.0

    def setup_cache(self) -> dict[str, dict]:
        return cached_verdicts()

    def setup(self, cache: dict[str, dict], group: str, method: str) -> None:
        check_cache(cache)
        if (group, method) not in CLAIMS:
            raise NotImplementedError(f"no claim {group} for {method}")  # asv: skipped (not in the grid)

    def _value(self, cache: dict[str, dict], group: str, method: str, key: str) -> float:
        return cache.get(CLAIMS[(group, method)], {}).get(key, math.nan)

    def track_delta(self, cache: dict[str, dict], group: str, method: str) -> float:
        return self._value(cache, group, method, "delta")

    def track_ci95_low(self, cache: dict[str, dict], group: str, method: str) -> float:
        return self._value(cache, group, method, "ci95_low")

    def track_ci95_high(self, cache: dict[str, dict], group: str, method: str) -> float:
        return self._value(cache, group, method, "ci95_high")

    track_delta.unit = EFFECT_UNIT
    track_ci95_low.unit = EFFECT_UNIT
    track_ci95_high.unit = EFFECT_UNIT


class ClaimOutcomes:
    """Per claim group, how many methods' claims are held / inconclusive / vacuous / contradicted."""

    params = (GROUPS,)
    param_names = ["group"]
    timeout = 60.0

    def setup_cache(self) -> dict[str, dict]:
        return cached_verdicts()

    def setup(self, cache: dict[str, dict], group: str) -> None:
        check_cache(cache)

    def _count(self, cache: dict[str, dict], group: str, outcome: str) -> int:
        return sum(
            1
            for (g, _), claim in CLAIMS.items()
            if g == group and claim in cache and cache[claim]["outcome"] == outcome
        )

    def track_held(self, cache: dict[str, dict], group: str) -> int:
        return self._count(cache, group, "held")

    def track_inconclusive(self, cache: dict[str, dict], group: str) -> int:
        return self._count(cache, group, "inconclusive")

    def track_vacuous(self, cache: dict[str, dict], group: str) -> int:
        return self._count(cache, group, "vacuous")

    def track_contradicted(self, cache: dict[str, dict], group: str) -> int:
        return self._count(cache, group, "contradicted")

    track_held.unit = "claims"
    track_inconclusive.unit = "claims"
    track_vacuous.unit = "claims"
    track_contradicted.unit = "claims"
