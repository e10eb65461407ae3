"""Experiment configuration: validated dataclasses (pydantic), loadable from YAML, with a stable hash.

Validation happens once, when a config is built (from YAML, the CLI or Python): every field's type,
integer counts >= 1, radii finite and in [0, 255], no duplicate YAML keys, lists where lists are
meant. Errors are `ConfigError`s (a ValueError) naming the field, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass

DEFAULT_TASKS = ("segmentation", "perturbation")
# Opt-in metrics beyond the papers (harness.metrics.insertion_deletion, road, sensitivity).
EXTRA_TASKS = ("insertion_deletion", "road", "max_sensitivity")
TASKS = DEFAULT_TASKS + EXTRA_TASKS
EXPLAIN_CLASSES = ("pred", "target")
ATTACKS = ("pgd", "adaptive")

Count = Annotated[int, Field(strict=True, ge=1)]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Name = Annotated[str, Field(strict=True, min_length=1)]
_STRICT = ConfigDict(extra="forbid", strict=False)


class ConfigError(ValueError):
    """An invalid experiment configuration; the message names the field, the value and what is allowed."""


@dataclass(frozen=True, config=_STRICT)
class DDSSpec:
    """One DDS setting: variant name, noise std in [0,1] pixel units, samples and fusion (None = the
    variant's default, see `harness.smoothing.dds.VARIANTS`; for `re` with samples None the runner
    uses Re's counts per task, `harness.smoothing.dds.re_samples`: 2 on attacked inputs, 10 on clean ones
    in segmentation and 2 in the perturbation test; a run with both tasks shares one map, and uses
    segmentation's).

    attack_per_trial: False (default) = one PGD attack per image, shared by the plain explanation and
    every DDS sample, so with and without DDS are compared on the same attacked input (paired);
    True = FViT's notebook: each of the m trials attacks the clean image afresh (PGD's random start
    seeded per trial; trial 0 is the shared attack) and purifies its own adversarial image."""

    variant: Name = "carlini"
    sigma: Annotated[float, Field(strict=True, gt=0, le=1, allow_inf_nan=False)] | None = None
    samples: Count | None = None
    fusion: Name | None = None
    sample_target: Literal["own", "input"] = "own"  # without a given class each sample explains its own prediction
    attack_per_trial: bool = False  # FViT's notebook: one PGD attack per trial (see above)

    @field_validator("variant")
    @classmethod
    def _known_variant(cls, value: str) -> str:
        from harness.smoothing.dds import get_variant

        try:
            get_variant(value)
        except KeyError as err:
            raise ValueError(str(err).strip("'\"")) from None
        return value


@dataclass(frozen=True, config=_STRICT)
class ExperimentConfig:
    """Everything that defines a run.

    methods: explanation methods (empty = every registered one); baselines: add the baseline maps (random,
    centre, constant: `harness.explainers.baselines`) as rows, the chance level each table is read against
    (None = only when methods is empty and the attack is pgd; true / false = always / never).
    radii_255: L-inf PGD radii in 1/255 pixel units; topk: the top-k size of FViT's overlap measure
    (a fraction of the map's pixels, or an int count); limit: the first `limit` items (null = all).
    attack: "pgd" (the papers': on the prediction, shared by every method) or "adaptive" (on each
    method's map itself, through its DDS variant with `eot_samples` noise draws per step, loss
    `adaptive_loss`; `harness.attacks.adaptive`, for the methods it has a differentiable form of).
    device: torch device (null = CUDA when available, else CPU); dds_batch: images per UNet /
    explainer batch inside DDS (null = memory-aware, `harness.runner.devices.dds_batch_for`).
    corrupt_images: "error" stops at an unreadable image naming its path; "skip" leaves it out and
    records it in the store's metadata (`skipped_items`).
    """

    name: Name = "embedded"
    model: Name = "mini-vit"
    weights: Name | None = None
    dataset: Name = "embedded"
    dataset_root: Name | None = None
    denoiser: Name | None = None
    methods: tuple[Name, ...] = ()
    baselines: bool | None = None  # add the baseline maps as rows; None = only when `methods` is empty (pgd)
    dds: tuple[DDSSpec, ...] = (DDSSpec(),)
    radii_255: tuple[Number, ...] = (0.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    tasks: tuple[Literal["segmentation", "perturbation", "insertion_deletion", "road", "max_sensitivity"], ...] = (
        DEFAULT_TASKS
    )
    explain_classes: tuple[Literal["pred", "target"], ...] = ("pred",)
    attack: Literal["pgd", "adaptive"] = "pgd"
    attack_steps: Count = 10
    adaptive_loss: Name = "topk"
    eot_samples: Count = 4
    denoiser_dtype: Literal["float32", "float16", "bfloat16"] = "float32"  # the UNet's (fp16/bf16 on CUDA as FViT/Re)
    topk: Annotated[int, Field(strict=True, ge=1)] | Annotated[float, Field(strict=True, gt=0, le=1)] = 0.1
    limit: Count | None = 100
    batch_size: Count = 25
    seed: Annotated[int, Field(strict=True, ge=0)] = 0
    device: Name | None = None
    dds_batch: Count | None = None
    corrupt_images: Literal["error", "skip"] = "error"

    @field_validator("radii_255")
    @classmethod
    def _radii(cls, radii: tuple[float, ...]) -> tuple[float, ...]:
        if not radii:
            raise ValueError("at least one radius is needed (0 = clean)")
        for r in radii:
            if not 0 <= r <= 255:
                raise ValueError(f"radius {r}/255 out of range: radii_255 are in 1/255 pixel units, in [0, 255]")
        if len(set(radii)) != len(radii):
            raise ValueError(f"radii {list(radii)} list a radius twice")
        return tuple(float(r) for r in radii)

    @field_validator("tasks", "explain_classes")
    @classmethod
    def _non_empty(cls, values: tuple) -> tuple:
        if not values:
            raise ValueError("must list at least one entry")
        return values

    @field_validator("methods")
    @classmethod
    def _plugin_methods(cls, methods: tuple[str, ...]) -> tuple[str, ...]:
        """Plug-in names (`captum:<Class>(option=value, ...)`) in their one spelling, checked now: the class
        exists, its options are its own, its package is installed (else the message names the extra)."""
        from harness.explainers.registry import canonical_name, get_spec

        out = []
        for method in methods:
            if _plugin(method):
                try:
                    method = get_spec(method).name
                except (ImportError, KeyError, TypeError, ValueError) as err:
                    raise ValueError(str(err).strip("'\"")) from None
            out.append(canonical_name(method))
        return tuple(out)

    @field_validator("device")
    @classmethod
    def _device(cls, value: str | None) -> str | None:
        if value is None:
            return None
        import torch

        try:
            torch.device(value)
        except RuntimeError:
            raise ValueError(f"{value!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        from harness.explainers.registry import names

        unknown = sorted(set(self.methods) - set(names(baselines=True)) - {m for m in self.methods if _plugin(m)})
        if unknown:
            raise ValueError(f"unknown method(s) {unknown} in methods; registered: {', '.join(names(baselines=True))}")
        if self.attack == "adaptive":
            from harness.attacks.adaptive import UNTARGETED_LOSSES as LOSSES
            from harness.attacks.differentiable import attackable_methods

            bad = sorted(set(self.resolved_methods()) - set(attackable_methods()))
            if bad:
                raise ValueError(
                    f"the adaptive attack has no differentiable form or surrogate of {bad}; with "
                    f"attack: adaptive list methods among {list(attackable_methods())}"
                )
            if self.adaptive_loss not in LOSSES:
                raise ValueError(f"unknown adaptive_loss {self.adaptive_loss!r}; choose from {LOSSES}")
        variants = [d.variant for d in self.dds]
        if len(set(variants)) != len(variants):
            raise ValueError(
                f"dds lists a variant more than once ({variants}): rows are keyed by variant name, so two "
                "settings of one variant would overwrite each other; run them as separate experiments"
            )
        return self

    @property
    def radii(self) -> list[float]:
        """Radii in [0,1] pixel units."""
        return [float(r) / 255.0 for r in self.radii_255]

    def adds_baselines(self) -> bool:
        """Whether the run adds the registered baseline maps to its methods: `baselines` when set; by default
        (None) only for a run of every method (`methods` empty) under the shared PGD attack (the adaptive
        attack has no differentiable form of a baseline map)."""
        if self.baselines is not None:
            return self.baselines
        return not self.methods and self.attack == "pgd"

    def resolved_methods(self) -> tuple[str, ...]:
        """The methods the run explains with: `methods` (empty = every registered explanation method), then the
        baseline maps not already listed when `adds_baselines()`."""
        from harness.explainers.registry import baseline_names, names

        methods = self.methods or tuple(names())
        if self.adds_baselines():
            methods += tuple(b for b in baseline_names() if b not in methods)
        return methods

    def identity_dict(self) -> dict[str, Any]:
        """The normalised fields that change per-unit results (not `name`, `limit` nor `device`:
        the resolved device is part of the run identity, `harness.runner.identity`)."""
        data = self.to_dict()
        for key in ("name", "limit", "device"):
            data.pop(key)
        data["methods"] = list(self.resolved_methods())
        data.pop("baselines")  # its whole effect is in the resolved methods
        # Options added later hash only when set, so existing stores keep their hash.
        if data.get("denoiser_dtype") == "float32":
            data.pop("denoiser_dtype")
        for spec in data["dds"]:
            if not spec.get("attack_per_trial", False):
                spec.pop("attack_per_trial", None)
        return data

    def config_hash(self) -> str:
        """Hash of `identity_dict` (numbers normalised: 0 and 0.0 hash alike)."""
        return hashlib.sha256(json.dumps(self.identity_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, **changes) -> ExperimentConfig:
        return build(lambda: dataclasses.replace(self, **changes))

    def to_dict(self) -> dict:
        """Plain JSON/YAML-serialisable dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def _plugin(method: str) -> bool:
    """A method named by a plug-in prefix (`captum:`) rather than registered."""
    from harness.explainers.captum_attr import is_captum_name

    return is_captum_name(method)


def _describe(err: ValidationError) -> str:
    """One line per pydantic error: field path, value, what is allowed."""
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"] if not str(p).startswith("constrained-")) or "config"
        msg = e["msg"].removeprefix("Value error, ").replace("Input should be a valid tuple", "expected a list")
        msg = msg.replace("Input should be", "should be")
        if e["type"] == "unexpected_keyword_argument":
            parts.append(f"unknown config key {where!r}")
        elif e["type"] == "missing_argument":
            parts.append(f"{where}: missing")
        else:
            value = e.get("input")
            shown = f" = {value!r}" if e["loc"] and not isinstance(value, dict) else ""
            parts.append(f"{where}{shown}: {msg}")
    return "; ".join(parts)


def build(make):
    """Call `make()` (a config constructor), turning validation failures into one-line ConfigErrors."""
    try:
        return make()
    except ValidationError as err:
        known = ", ".join(f.name for f in dataclasses.fields(ExperimentConfig))
        text = _describe(err)
        hint = f" (known keys: {known})" if "unknown config key" in text else ""
        raise ConfigError(f"invalid configuration: {text}{hint}") from None


def config_from_dict(data: dict) -> ExperimentConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping of config keys, got {type(data).__name__}")
    return build(lambda: ExperimentConfig(**data))


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"line {key_node.start_mark.line + 1}: key {key!r} is given twice")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_config(path: str | Path) -> ExperimentConfig:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"experiment config {path} does not exist")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    try:
        return config_from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


DEFAULT_CONFIG = ExperimentConfig()
