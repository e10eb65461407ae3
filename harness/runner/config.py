"""Experiment configuration: a dataclass, loadable from YAML, with a stable hash of what shapes results."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULT_TASKS = ("segmentation", "perturbation")
# Opt-in metrics beyond the papers (harness.metrics.insertion_deletion, road, sensitivity).
EXTRA_TASKS = ("insertion_deletion", "road", "max_sensitivity")
TASKS = DEFAULT_TASKS + EXTRA_TASKS
EXPLAIN_CLASSES = ("pred", "target")
ATTACKS = ("pgd", "adaptive")


@dataclass(frozen=True)
class DDSSpec:
    """One DDS setting: variant name, noise std in [0,1] pixel units, samples and fusion (None = the
    variant's default, see `harness.smoothing.dds.VARIANTS`; for `re` with samples None the runner
    uses Re's m = 2 on attacked and 10 on clean inputs)."""

    variant: str = "carlini"
    sigma: float | None = None
    samples: int | None = None
    fusion: str | None = None
    sample_target: str = "own"  # without a given class each sample explains its own prediction (or "input")


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines a run.

    radii_255: L-inf PGD radii in 1/255 pixel units; topk: the top-k size of FViT's overlap measure
    (a fraction of the map's pixels, or an int count); limit: the first `limit` items (null = all).
    attack: "pgd" (the papers': on the prediction, shared by every method) or "adaptive" (on each
    method's map itself, through its DDS variant with `eot_samples` noise draws per step, loss
    `adaptive_loss`; `harness.attacks.adaptive`, for the methods it has a differentiable form of).
    """

    name: str = "embedded"
    model: str = "mini-vit"
    weights: str | None = None
    dataset: str = "embedded"
    dataset_root: str | None = None
    denoiser: str | None = None
    methods: tuple[str, ...] = ()
    dds: tuple[DDSSpec, ...] = (DDSSpec(),)
    radii_255: tuple[float, ...] = (0, 2, 4, 8, 16, 32)
    tasks: tuple[str, ...] = DEFAULT_TASKS
    explain_classes: tuple[str, ...] = ("pred",)
    attack: str = "pgd"
    attack_steps: int = 10
    adaptive_loss: str = "topk"
    eot_samples: int = 4
    topk: float = 0.1
    limit: int | None = 100
    batch_size: int = 25
    seed: int = 0

    def __post_init__(self) -> None:
        bad = set(self.tasks) - set(TASKS)
        if bad:
            raise ValueError(f"unknown task(s) {sorted(bad)}; choose from {TASKS}")
        bad = set(self.explain_classes) - set(EXPLAIN_CLASSES)
        if bad:
            raise ValueError(f"unknown explain class mode(s) {sorted(bad)}; choose from {EXPLAIN_CLASSES}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1 or null, got {self.limit}")
        if self.attack not in ATTACKS:
            raise ValueError(f"unknown attack {self.attack!r}; choose from {ATTACKS}")
        if self.attack == "adaptive":
            from harness.attacks.adaptive import DIFFERENTIABLE_METHODS, LOSSES

            bad = sorted(set(self.resolved_methods()) - set(DIFFERENTIABLE_METHODS))
            if bad:
                raise ValueError(f"the adaptive attack has no differentiable form of {bad}; with attack: adaptive "
                                 f"list methods among {sorted(DIFFERENTIABLE_METHODS)}")
            if self.adaptive_loss not in LOSSES:
                raise ValueError(f"unknown adaptive_loss {self.adaptive_loss!r}; choose from {LOSSES}")
            if self.eot_samples < 1:
                raise ValueError(f"eot_samples must be >= 1, got {self.eot_samples}")
        variants = [d.variant for d in self.dds]
        if len(set(variants)) != len(variants):
            raise ValueError(
                f"dds lists a variant more than once ({variants}): rows are keyed by variant name, so two "
                "settings of one variant would overwrite each other; run them as separate experiments"
            )
        for r in self.radii_255:
            if not 0 <= float(r) <= 255:
                raise ValueError(f"radius {r}/255 out of range: radii_255 are in 1/255 pixel units, in [0, 255]")

    @property
    def radii(self) -> list[float]:
        """Radii in [0,1] pixel units."""
        return [float(r) / 255.0 for r in self.radii_255]

    def resolved_methods(self) -> tuple[str, ...]:
        from harness.explainers.registry import names

        return self.methods or tuple(names())

    def config_hash(self) -> str:
        """Hash of every field that changes per-unit results (not `name` nor `limit`)."""
        data = dataclasses.asdict(self)
        data.pop("name")
        data.pop("limit")
        data["methods"] = list(self.resolved_methods())
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, **changes) -> ExperimentConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain JSON/YAML-serialisable dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def config_from_dict(data: dict) -> ExperimentConfig:
    known = {f.name for f in dataclasses.fields(ExperimentConfig)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown config key(s) {sorted(unknown)}; known keys: {sorted(known)}")
    data = dict(data)
    if "dds" in data:
        data["dds"] = tuple(DDSSpec(**d) if isinstance(d, dict) else d for d in (data["dds"] or ()))
    for key in ("methods", "radii_255", "tasks", "explain_classes"):
        if key in data and data[key] is not None:
            data[key] = tuple(data[key])
    return ExperimentConfig(**data)


def load_config(path: str | Path) -> ExperimentConfig:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"experiment config {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return config_from_dict(data)


DEFAULT_CONFIG = ExperimentConfig()
