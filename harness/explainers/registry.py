"""The one registry of explanation methods and the one signature they share.

An explanation method is registered as a *raw* function
``fn(model, images, target, **options) -> scores`` where `images` are (B,3,H,W) in [0,1],
`target` is a LongTensor (B,) of classes to explain (already resolved), and `scores` is either
patch-token scores (B, N_patches) or a pixel map (B, H, W). `explain` turns either into maps
(B, H, W) at image resolution, float32, min-max normalised per image to [0,1]:
patch scores are reshaped to the patch grid and bilinearly upsampled (align_corners=False).
A constant map normalises to all zeros; a NaN or infinite score raises ValueError, and so do images
outside [0,1] and a method that does not return one map per image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from harness.models.classifier import ViTClassifier

RawExplainer = Callable[..., torch.Tensor]


class Explainer(Protocol):
    """Anything called as explainer(model, images, target=None) -> maps (B, H, W) in [0,1]."""

    def __call__(
        self, model: ViTClassifier, images: torch.Tensor, target: torch.Tensor | None = None
    ) -> torch.Tensor: ...


ClassSpecific = bool | Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class ExplainerSpec:
    name: str
    fn: RawExplainer
    class_specific: ClassSpecific
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)
    baseline: bool = False  # a reference map (random, centre, constant), not an explanation method

    def is_class_specific(self, **options: Any) -> bool:
        """Whether the map depends on the explained class with these options (default: the method's)."""
        if callable(self.class_specific):
            return bool(self.class_specific({**self.defaults, **options}))
        return bool(self.class_specific)


_REGISTRY: dict[str, ExplainerSpec] = {}


def register(
    name: str, *, class_specific: ClassSpecific, description: str = "", baseline: bool = False, **defaults: Any
) -> Callable[[RawExplainer], RawExplainer]:
    """Decorator: register `fn` under `name` with its default options.

    class_specific: whether the map depends on the explained class (False for raw attention, rollout),
    or a function of the options that says so (attribution rollout: only with top_class=False);
    baseline: a reference map for negative controls and chance levels, left out of `names()` unless
    asked for, so a run of "every method" does not include it.
    """

    def deco(fn: RawExplainer) -> RawExplainer:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"explainer {name!r} is already registered")
        _REGISTRY[name] = ExplainerSpec(
            name, fn, class_specific, description or (fn.__doc__ or "").strip(), defaults, baseline
        )
        return fn

    return deco


_PLUGINS: dict[str, ExplainerSpec] = {}  # specs built from a name (`captum:...`), kept out of `names()`


def get_spec(name: str) -> ExplainerSpec:
    """The spec registered as `name`, or built from a plug-in name (`captum:<Class>(option=value, ...)`,
    `harness.explainers.captum_attr`): ImportError when Captum is missing, KeyError for an unknown name."""
    _ensure_builtin()
    if name in _REGISTRY:
        return _REGISTRY[name]
    from harness.explainers import captum_attr

    if captum_attr.is_captum_name(name):
        if name not in _PLUGINS:
            _PLUGINS[name] = captum_attr.captum_spec(name)
        return _PLUGINS[name]
    raise KeyError(
        f"unknown explainer {name!r}; registered: {', '.join(names(baselines=True))} "
        f"(and {captum_attr.PREFIX}<Class> for Captum's attributions)"
    )


def canonical_name(name: str) -> str:
    """The one spelling of a method name (plug-in names' options sorted); registered names unchanged."""
    from harness.explainers import captum_attr

    return captum_attr.canonical_name(name)


def split_names(text: str) -> list[str]:
    """Comma-separated method names, commas inside parentheses kept: 'a,captum:Occlusion(strides=(3,4,4))'."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def names(baselines: bool = False) -> list[str]:
    """Registered explanation methods, sorted; with baselines=True also the baseline maps."""
    _ensure_builtin()
    return sorted(n for n, spec in _REGISTRY.items() if baselines or not spec.baseline)


def baseline_names() -> list[str]:
    """The registered baseline maps (random, centre, constant, ...)."""
    _ensure_builtin()
    return sorted(n for n, spec in _REGISTRY.items() if spec.baseline)


def resolve_target(model: ViTClassifier, images: torch.Tensor, target: torch.Tensor | int | None) -> torch.Tensor:
    """None -> the model's predicted class per image; an int -> that class for every image."""
    if target is None:
        with torch.no_grad():
            return model(images).argmax(dim=1)
    if isinstance(target, int):
        target = torch.full((images.shape[0],), target, dtype=torch.long, device=images.device)
    target = torch.as_tensor(target, device=images.device).long().reshape(-1)
    if target.numel() != images.shape[0]:
        raise ValueError(f"target has {target.numel()} entries for a batch of {images.shape[0]} images")
    if (target < 0).any() or (target >= model.num_classes).any():
        raise ValueError(f"target classes must lie in [0, {model.num_classes}); got {target.tolist()}")
    return target


def to_maps(
    scores: torch.Tensor, model: ViTClassifier, method: str = "explainer", batch: int | None = None
) -> torch.Tensor:
    """Patch scores (B, N) or pixel maps (B, H, W) -> (B, S, S) float32 maps, min-max normalised.

    batch: the number of images explained; raises a ValueError unless there is one map per image."""
    if not torch.is_tensor(scores):
        raise TypeError(f"{method}: returned {type(scores).__name__}, expected a tensor of scores or maps")
    scores = scores.detach().float()
    if batch is not None and (scores.ndim == 0 or scores.shape[0] != batch):
        got = "a scalar" if scores.ndim == 0 else f"{scores.shape[0]} map(s) (shape {tuple(scores.shape)})"
        raise ValueError(f"{method}: returned {got} for {batch} image(s); an explainer returns one map per image")
    b, s, g = scores.shape[0], model.image_size, model.grid_size
    # Decided before upsampling: bilinear weights sum to 1 only up to rounding, so an upsampled
    # constant can vary by an ulp, which min-max normalisation would blow up to [0, 1].
    flat = scores.reshape(b, -1)
    constant = (flat.amax(dim=1) == flat.amin(dim=1)).view(b, 1, 1)
    if scores.ndim == 2:
        if scores.shape[1] != g * g:
            raise ValueError(f"{method}: {scores.shape[1]} patch scores, expected {g * g} for a {g}x{g} grid")
        scores = F.interpolate(scores.view(b, 1, g, g), size=(s, s), mode="bilinear", align_corners=False)[:, 0]
    elif scores.ndim != 3 or tuple(scores.shape[-2:]) != (s, s):
        raise ValueError(f"{method}: returned shape {tuple(scores.shape)}, expected (B, {g * g}) or (B, {s}, {s})")
    if not torch.isfinite(scores).all():
        raise ValueError(f"{method}: explanation contains NaN or infinite values")
    maps = normalise_maps(scores)
    return torch.where(constant, torch.zeros_like(maps), maps)


def raw_maps(scores: torch.Tensor, model: ViTClassifier, method: str = "explainer") -> torch.Tensor:
    """Patch scores (B, N) or pixel maps (B, H, W) -> (B, S, S) float32 maps at image resolution, NOT
    normalised (patch scores bilinearly upsampled as in `to_maps`). For fusions of raw maps (Re's)."""
    scores = scores.detach().float()
    b, s, g = scores.shape[0], model.image_size, model.grid_size
    if scores.ndim == 2 and scores.shape[1] == g * g:
        scores = F.interpolate(scores.view(b, 1, g, g), size=(s, s), mode="bilinear", align_corners=False)[:, 0]
    elif scores.ndim != 3 or tuple(scores.shape[-2:]) != (s, s):
        raise ValueError(f"{method}: returned shape {tuple(scores.shape)}, expected (B, {g * g}) or (B, {s}, {s})")
    if not torch.isfinite(scores).all():
        raise ValueError(f"{method}: explanation contains NaN or infinite values")
    return scores


def normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each map to [0,1]; a constant map becomes all zeros."""
    flat = maps.flatten(1)
    lo, hi = flat.min(dim=1, keepdim=True).values, flat.max(dim=1, keepdim=True).values
    span = hi - lo
    out = torch.where(span > 0, (flat - lo) / span.clamp_min(torch.finfo(flat.dtype).tiny), torch.zeros_like(flat))
    return out.view_as(maps)


def _spec_with(name: str, options: dict[str, Any]):
    """The registered spec of `name`, after checking that every option is one of its own."""
    spec = get_spec(name)
    unknown = set(options) - set(spec.defaults)
    if unknown:
        raise TypeError(f"{name}: unknown option(s) {sorted(unknown)}; options are {sorted(spec.defaults)}")
    return spec


def explain(
    name: str, model: ViTClassifier, images: torch.Tensor, target: torch.Tensor | int | None = None, **options: Any
) -> torch.Tensor:
    """Run registered method `name`: maps (B, H, W) float32 in [0,1] at image resolution."""
    spec = _spec_with(name, options)
    model.check_images(images)
    model.check_pixel_range(images)
    target = resolve_target(model, images, target)
    return to_maps(spec.fn(model, images, target, **{**spec.defaults, **options}), model, name, images.shape[0])


def explain_raw(
    name: str, model: ViTClassifier, images: torch.Tensor, target: torch.Tensor | int | None = None, **options: Any
) -> torch.Tensor:
    """Like `explain`, but the maps are the method's raw scores at image resolution (not normalised)."""
    spec = _spec_with(name, options)
    model.check_images(images)
    target = resolve_target(model, images, target)
    return raw_maps(spec.fn(model, images, target, **{**spec.defaults, **options}), model, name)


@dataclass(frozen=True)
class RegisteredExplainer:
    """A registered method bound to its options; satisfies the `Explainer` protocol."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def __call__(
        self, model: ViTClassifier, images: torch.Tensor, target: torch.Tensor | int | None = None
    ) -> torch.Tensor:
        return explain(self.name, model, images, target, **self.options)

    def raw(self, model: ViTClassifier, images: torch.Tensor, target: torch.Tensor | int | None = None) -> torch.Tensor:
        """The unnormalised maps (see `explain_raw`), for fusions of raw maps."""
        return explain_raw(self.name, model, images, target, **self.options)

    @property
    def class_specific(self) -> bool:
        """Whether this explainer's maps depend on the explained class, with its options."""
        return get_spec(self.name).is_class_specific(**self.options)

    @property
    def label(self) -> str:
        return self.name


def get_explainer(name: str, **options: Any) -> RegisteredExplainer:
    """The explainer registered as `name`, bound to `options` (validated now, not at call time)."""
    spec = get_spec(name)
    unknown = set(options) - set(spec.defaults)
    if unknown:
        raise TypeError(f"{name}: unknown option(s) {sorted(unknown)}; options are {sorted(spec.defaults)}")
    return RegisteredExplainer(spec.name, dict(options))


def _ensure_builtin() -> None:
    """Import the built-in method modules (they register themselves on import)."""
    from harness.explainers import builtin  # noqa: F401
