"""Load and validate the claims registry (claims/claims.yaml).

A claim is one of:
- a *value*: a reported number, held when |measured - reported| <= tolerance;
- a *relation* between the explanation with and without DDS in the same setting, judged on the 95%
  paired-bootstrap interval of its effect (`harness.claims.evaluate`):
  `dds >= none` / `dds <= none` compare the levels under attack, `dds drop < none drop` compares
  the degradation from clean to attacked, `dds work > none work` compares counted compute (FLOPs);
- an *effect*: a DDS effect (with minus without, same setting) a paper reports, held when the
  measured effect lies within a tolerance derived from the sampling interval at both sample sizes.
A `control` claim is a negative control (identity DDS, random or constant maps): it must not be held;
a positive control (the oracle, which restores the clean input): it must be held unless vacuous; or
(noise only) it is reported as a finding about the papers' claim.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

CLAIMS_FILE = Path(__file__).resolve().parents[2] / "claims" / "claims.yaml"
# libyaml's loader when PyYAML was built with it (same documents, ~8x faster on the 12k-line registry).
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
LEVEL_RELATIONS = ("dds >= none", "dds <= none")
DROP_RELATION = "dds drop < none drop"
WORK_RELATION = "dds work > none work"
RELATIONS = (*LEVEL_RELATIONS, DROP_RELATION, WORK_RELATION)
KINDS = ("value", "relation", "effect")
# What a claim's evaluation concludes (a claim is held only when its interval says so).
OUTCOMES = ("held", "contradicted", "inconclusive", "vacuous", "skipped")
# How a control claim's test treats its outcome: must not be held (negative), must be held wherever it is
# decidable (positive: the oracle), or reported as a finding.
CONTROL_EXPECT = ("not_held", "held", "report")
WORLDS = ("paper", "embedded")


@dataclass(frozen=True)
class Claim:
    id: str
    claim: str  # which claim of docs/PROTOCOL.md section 1 (fvit-1, fvit-2, re-3, re-4) or "anchor"
    source: str
    table: str
    statement: str
    world: str
    model: str
    dataset: str
    method: str
    dds: str
    attack: str
    radius_255: float
    metric: str
    convention: str
    kind: str  # "value" | "relation" | "effect"
    reported: float | None
    relation: str | None
    tolerance: float
    provenance: str
    confidence: str
    note: str = ""
    control: str = ""  # "" or the negative control this claim runs (identity, noise_only, random_maps, ...)
    expect: str = ""  # controls: "not_held", "held" (positive control) or "report"
    n_reported: int | None = None  # effect claims: the images the paper's number was measured on
    source_ref: str = ""  # exact source: repository@commit:file#cell, table or figure
    sample: str = ""  # the images the reported number was measured on

    @property
    def robustness(self) -> bool:
        """A claim about robustness under attack: its attack must hurt the plain method (else vacuous)."""
        return self.kind == "relation" and self.relation != WORK_RELATION and self.radius_255 > 0

    @property
    def higher_is_better(self) -> bool:
        return not self.metric.startswith("positive_")

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"claim {self.id}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind in ("value", "effect") and self.reported is None:
            raise ValueError(f"claim {self.id}: a {self.kind} claim needs `reported`")
        if self.kind == "effect" and not self.n_reported:
            raise ValueError(f"claim {self.id}: an effect claim needs `n_reported` (the paper's sample size)")
        if self.control and self.expect not in CONTROL_EXPECT:
            raise ValueError(f"claim {self.id}: a control claim needs expect in {CONTROL_EXPECT}")
        if self.kind == "relation" and self.relation not in RELATIONS:
            raise ValueError(f"claim {self.id}: relation must be one of {RELATIONS}, got {self.relation!r}")
        if self.world not in WORLDS:
            raise ValueError(f"claim {self.id}: world must be one of {WORLDS}, got {self.world!r}")
        if self.tolerance < 0:
            raise ValueError(f"claim {self.id}: tolerance must be >= 0")

    def to_dict(self) -> dict:
        return asdict(self)


# The last parsed registry by (resolved path, file text): reading and comparing the text costs ~1 ms, so a
# file rewritten on disk (however soon, whatever its size) is parsed again.
_CACHE: dict[tuple[str, str], tuple[Claim, ...]] = {}


def load_claims(path: str | Path = CLAIMS_FILE) -> list[Claim]:
    """The claims of `path`, in file order (a new list each call; Claim is frozen, so the claims are shared)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"claims registry {path} is missing; regenerate it with `fvit-bench claims build`")
    text = path.read_text()
    key = (str(path.resolve()), text)
    if key not in _CACHE:
        claims = tuple(_parse(path, text))
        _CACHE.clear()  # one registry at a time
        _CACHE[key] = claims
    return list(_CACHE[key])


def _parse(path: Path, text: str) -> list[Claim]:
    data = yaml.load(text, Loader=_YAML_LOADER)
    claims = [Claim(**entry) for entry in data["claims"]]
    ids = [c.id for c in claims]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise ValueError(f"{path}: duplicate claim ids {sorted(dupes)}")
    return claims
