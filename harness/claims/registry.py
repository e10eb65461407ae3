"""Load and validate the claims registry (claims/claims.yaml).

A claim is either a *value* (a reported number, met when |measured - reported| <= tolerance) or a
*relation* between the explanation with and without DDS in the same setting, e.g. `dds >= none`
(met when measured_dds - measured_none >= -tolerance; tolerance 0 means the direction must hold).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

CLAIMS_FILE = Path(__file__).resolve().parents[2] / "claims" / "claims.yaml"
RELATIONS = ("dds >= none", "dds <= none", "dds / none >= 1")
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
    kind: str  # "value" | "relation"
    reported: float | None
    relation: str | None
    tolerance: float
    provenance: str
    confidence: str
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("value", "relation"):
            raise ValueError(f"claim {self.id}: kind must be 'value' or 'relation', got {self.kind!r}")
        if self.kind == "value" and self.reported is None:
            raise ValueError(f"claim {self.id}: a value claim needs `reported`")
        if self.kind == "relation" and self.relation not in RELATIONS:
            raise ValueError(f"claim {self.id}: relation must be one of {RELATIONS}, got {self.relation!r}")
        if self.world not in WORLDS:
            raise ValueError(f"claim {self.id}: world must be one of {WORLDS}, got {self.world!r}")
        if self.tolerance < 0:
            raise ValueError(f"claim {self.id}: tolerance must be >= 0")

    def to_dict(self) -> dict:
        return asdict(self)


def load_claims(path: str | Path = CLAIMS_FILE) -> list[Claim]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"claims registry {path} is missing; regenerate it with `fvit-bench claims build`")
    data = yaml.safe_load(path.read_text())
    claims = [Claim(**entry) for entry in data["claims"]]
    ids = [c.id for c in claims]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise ValueError(f"{path}: duplicate claim ids {sorted(dupes)}")
    return claims
