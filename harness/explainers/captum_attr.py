"""Captum attributions as explainers: `captum:<Name>` or `captum:<Name>(option=value, ...)`.

Any class of `captum.attr` built from the model alone (`Name(forward_func)` or `Name(model)`) whose
`attribute(inputs, target=...)` returns one attribution per input pixel becomes an explanation method
(Integrated Gradients, Saliency, GradientShap, Occlusion, InputXGradient, DeepLift, GuidedBackprop, ...);
layer and neuron attributions (which need a layer) and NoiseTunnel (which wraps another attribution) are
refused by name. The forward function is the `ViTClassifier` itself: [0,1] images in, logits out.

Options (the name's parentheses, Python literals; or `get_explainer(name, **options)`): every keyword of
the class's constructor and of its `attribute` that has a literal default (`n_steps`, `method`,
`internal_batch_size`, `multiply_by_inputs`, `strides`, ...) or none (`sliding_window_shapes`: required),
plus three of the harness's own:
- `reduce`: the rule that makes one map per image from the (B, 3, H, W) attribution, one of `REDUCTIONS`
  (default `abs_sum`: sum over RGB of |a|);
- `baselines`: the reference image of the classes that take one (IG, GradientShap, Occlusion, DeepLift,
  ...), a constant in [0,1] pixel units (default 0.0: a black image);
- `seed`: the seed of the classes that sample (GradientShap's baselines, noise and interpolation points),
  set in torch's and numpy's global streams for the call and restored after it, so the caller's stream is
  untouched (default 0). Such a method's maps then depend on the batch they are explained in.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from harness.models.classifier import ViTClassifier

PREFIX = "captum:"
INSTALL_HINT = "pip install fvit-bench[captum]"
# One map per image from a (B, 3, H, W) attribution.
REDUCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "abs_sum": lambda a: a.abs().sum(dim=1),  # sum over RGB of |a| (the default)
    "sum": lambda a: a.sum(dim=1),  # signed sum over RGB
    "l2": lambda a: a.norm(dim=1),  # L2 norm over RGB
    "max_abs": lambda a: a.abs().amax(dim=1),  # max over RGB of |a|
}
DEFAULT_REDUCE = "abs_sum"
DEFAULT_BASELINE = 0.0  # black, in [0,1] pixel units
# Arguments the wrapper supplies itself (never options).
_SUPPLIED = {"self", "inputs", "target", "baselines", "additional_forward_args", "return_convergence_delta"}
_MODEL_ARGS = ("forward_func", "model")
_LITERAL = (type(None), bool, int, float, str, tuple)
_NAME = re.compile(r"^captum:([A-Za-z_]\w*)\s*(?:\((.*)\))?\s*$", re.DOTALL)


def is_captum_name(name: str) -> bool:
    return name.startswith(PREFIX)


def parse_name(name: str) -> tuple[str, dict[str, Any]]:
    """'captum:IntegratedGradients(n_steps=32)' -> ('IntegratedGradients', {'n_steps': 32})."""
    match = _NAME.match(name.strip())
    if not match:
        raise ValueError(
            f"method {name!r}: a Captum method is written captum:<Class> or captum:<Class>(option=value, ...), "
            "e.g. captum:IntegratedGradients(n_steps=32)"
        )
    cls_name, args = match.group(1), (match.group(2) or "").strip()
    if not args:
        return cls_name, {}
    try:
        call = ast.parse(f"f({args})", mode="eval").body
        assert isinstance(call, ast.Call)
        if call.args:
            raise ValueError("positional")
        options = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
        if None in options:
            raise ValueError("**")
    except (SyntaxError, ValueError, AssertionError):
        raise ValueError(
            f"method {name!r}: options are keyword=literal pairs (numbers, strings, booleans, tuples), e.g. "
            f"captum:{cls_name}(n_steps=32, reduce='l2')"
        ) from None
    return cls_name, options


def canonical_name(name: str) -> str:
    """One spelling per method and options (sorted keywords, Python reprs): the name rows are keyed by."""
    if not is_captum_name(name):
        return name
    cls_name, options = parse_name(name)
    if not options:
        return PREFIX + cls_name
    return f"{PREFIX}{cls_name}({', '.join(f'{k}={v!r}' for k, v in sorted(options.items()))})"


def _captum_class(cls_name: str) -> type:
    try:
        import captum.attr
    except ImportError:
        raise ImportError(f"captum:{cls_name} needs Captum, which is not installed: {INSTALL_HINT}") from None
    cls = getattr(captum.attr, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, captum.attr.Attribution)):
        raise KeyError(
            f"captum.attr has no attribution class {cls_name!r}; the (inputs, target) ones: "
            f"{', '.join(supported_classes())}"
        )
    return cls


def supported_classes() -> list[str]:
    """The classes of the installed `captum.attr` this wrapper takes (built from the model alone, with a target)."""
    import captum.attr

    out = []
    for n, c in sorted(vars(captum.attr).items()):
        if isinstance(c, type) and issubclass(c, captum.attr.Attribution) and not inspect.isabstract(c):
            try:
                _signature(c)
            except (TypeError, ValueError):
                continue
            out.append(n)
    return out


def _params(fn: Callable) -> dict[str, inspect.Parameter]:
    return {
        n: p
        for n, p in inspect.signature(fn).parameters.items()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and n not in _SUPPLIED
    }


def _signature(cls: type) -> tuple[str, dict[str, Any], dict[str, Any], set[str], bool]:
    """(model argument, constructor options, attribute options, required options, takes baselines)."""
    if not callable(getattr(cls, "attribute", None)):
        raise TypeError(f"captum:{cls.__name__} is an abstract base class (it has no attribute method)")
    init = _params(cls.__init__)
    model_arg = next(iter(init), None)
    required_init = [n for n, p in init.items() if p.default is p.empty and n != model_arg]
    attr_all = inspect.signature(cls.attribute).parameters
    if model_arg not in _MODEL_ARGS or required_init or "target" not in attr_all:
        why = f"it needs {required_init}" if required_init else "it is not built from the model alone"
        if "target" not in attr_all:
            why = "its attribute() takes no target"
        raise TypeError(
            f"captum:{cls.__name__} is not an (inputs, target) attribution of the model ({why}); use a "
            "primary attribution such as IntegratedGradients, Saliency, GradientShap or Occlusion"
        )
    ctor = {n: p.default for n, p in init.items() if n != model_arg and isinstance(p.default, _LITERAL)}
    attr = _params(cls.attribute)
    required = {n for n, p in attr.items() if p.default is p.empty}
    attribute = {n: p.default for n, p in attr.items() if n not in required and isinstance(p.default, _LITERAL)}
    return model_arg, ctor, attribute, required, "baselines" in attr_all


def captum_spec(name: str):
    """The `ExplainerSpec` of a `captum:` name (its options become the spec's defaults)."""
    from harness.explainers.registry import ExplainerSpec

    cls_name, options = parse_name(name)
    cls = _captum_class(cls_name)
    model_arg, ctor, attribute, required, takes_baselines = _signature(cls)
    own: dict[str, Any] = {"reduce": DEFAULT_REDUCE, "seed": 0}
    if takes_baselines:
        own["baselines"] = DEFAULT_BASELINE
    defaults = {**attribute, **ctor, **{n: None for n in required}, **own}
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TypeError(f"captum:{cls_name}: unknown option(s) {unknown}; options are {sorted(defaults)}")
    missing = sorted(n for n in required if options.get(n) is None)
    if missing:
        raise TypeError(
            f"captum:{cls_name} needs option(s) {missing} (Captum has no default), e.g. "
            f"captum:{cls_name}({', '.join(f'{n}=...' for n in missing)})"
        )
    _check_own({**own, **options}, cls_name)
    defaults.update(options)

    def fn(model: ViTClassifier, images: torch.Tensor, target: torch.Tensor, **opts: Any) -> torch.Tensor:
        _check_own(opts, cls_name)
        method = cls(model, **{k: opts[k] for k in ctor})
        kwargs = {k: opts[k] for k in (*attribute, *required)}
        if takes_baselines:
            kwargs["baselines"] = torch.full_like(images, float(opts["baselines"]))
        devices = [images.device] if images.device.type == "cuda" else []
        numpy_state = np.random.get_state()  # Captum draws from both torch's and numpy's global streams
        try:
            with torch.random.fork_rng(devices=devices), torch.enable_grad():
                torch.manual_seed(int(opts["seed"]))
                np.random.seed(int(opts["seed"]))
                inputs = images.detach().clone().requires_grad_(True)  # gradient methods need it; others ignore it
                attributions = method.attribute(inputs, target=target, **kwargs)
        finally:
            np.random.set_state(numpy_state)
        if attributions.shape != images.shape:
            raise ValueError(
                f"captum:{cls_name} returned attributions of shape {tuple(attributions.shape)} for images of "
                f"shape {tuple(images.shape)}; the wrapper needs one attribution per input pixel"
            )
        return REDUCTIONS[opts["reduce"]](attributions.detach())

    baseline = f", baseline {defaults['baselines']:g} (pixel units)" if takes_baselines else ""
    description = f"Captum {cls_name} (captum.attr), reduced by {defaults['reduce']} over RGB{baseline}."
    return ExplainerSpec(canonical_name(name), fn, True, description, defaults)


def _check_own(opts: dict[str, Any], cls_name: str) -> None:
    if opts["reduce"] not in REDUCTIONS:
        raise ValueError(f"captum:{cls_name}: reduce={opts['reduce']!r}; choose from {list(REDUCTIONS)}")
    base = opts.get("baselines")
    if base is not None and not (isinstance(base, int | float) and 0 <= base <= 1):
        raise ValueError(f"captum:{cls_name}: baselines={base!r}; a constant in [0,1] pixel units (0 = black)")
