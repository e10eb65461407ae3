"""Device consistency without a GPU: run CPU code as if the models and inputs lived on a second device.

`DeviceConsistencyMode` is a `torch.overrides.TorchFunctionMode` that sees every torch call (module
internals included: each op of a forward is a call) and keeps, per tensor, whether it is "on the
device" (the fake device `FAKE_DEVICE` = cpu:1, which torch accepts and allocates on the CPU):

- `place(module_or_tensor)`, `.to(FAKE_DEVICE)` and any factory call with `device=FAKE_DEVICE` put a
  tensor on the device; an op with a device tensor among its inputs puts its outputs there; `.cpu()`,
  `.to("cpu")` and `device="cpu"` leave them on the host;
- a device tensor's `.device` reads as `FAKE_DEVICE`, so `torch.zeros(n, device=x.device)` follows x
  exactly as it follows a CUDA tensor, while `torch.zeros(n)` stays on the host;
- `torch.Generator(device=...)` remembers the device it was asked for (patched while the mode is on).

It raises `DeviceMixError` where CUDA would raise: an op mixing device and host tensors (0-dim host
tensors excepted, as CUDA accepts CPU scalars), tensors of two real devices (e.g. cpu and meta), a
random draw whose generator is on another device than its output, and `.numpy()` of a device tensor.
It counts host syncs on device tensors (`item`, `tolist`, `int()`, `float()`, `bool()`, `.cpu()`,
`.numpy()`) in `syncs`, so a test can show that a loop's syncs do not grow with the batch.

What it covers: tensors and generators left on (or moved to) the wrong device, on every code path the
checked code runs on CPU. What only a real GPU shows: fp16/bf16 overflow and kernel numerics (cuDNN,
TF32), memory use and out-of-memory batch sizes, the cost of each host sync, and device-only code
branches (`device.type == "cuda"`: the synchronisations, the memory-aware DDS batch).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary

FAKE_DEVICE = torch.device("cpu", 1)
_REAL_GENERATOR = torch.Generator
_SYNCS = {"item", "tolist", "__int__", "__float__", "__bool__", "__index__", "cpu", "numpy"}
_TO_HOST = {"numpy", "tolist", "item", "__int__", "__float__", "__bool__", "__index__"}
_RANDOM_KWARG = "generator"
_DEVICE_PROPERTY = torch.Tensor.device
_UNCHECKED = {
    "copy_",
    "__setitem__",
    "__getitem__",
    "__set__",
    "_has_compatible_shallow_copy_type",
}  # legal across devices on CUDA


class DeviceMixError(AssertionError):
    """A call that CUDA would reject (or that would leave data behind) because of a device mismatch."""


class _DeviceGenerator(_REAL_GENERATOR):
    """torch.Generator that remembers the device it was asked for (`wanted`); it draws on the CPU."""

    def __new__(cls, device: str | torch.device = "cpu") -> _DeviceGenerator:
        wanted = torch.device(device)
        gen = super().__new__(cls, device=wanted.type)
        gen.wanted = wanted
        return gen

    def __init__(self, device: str | torch.device = "cpu") -> None:
        pass


def _name(func: Any) -> str:
    return getattr(func, "__name__", str(func))


def _as_device(value: Any) -> torch.device | None:
    if isinstance(value, torch.device):
        return value
    if isinstance(value, str):
        try:
            return torch.device(value)
        except RuntimeError:
            return None
    return None


class DeviceConsistencyMode(TorchFunctionMode):
    """See the module docstring. Use as a context manager; `place` the models before (or inside) it."""

    def __init__(self, device: torch.device = FAKE_DEVICE) -> None:
        super().__init__()
        self.device = torch.device(device)
        self._on_device: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self.syncs: dict[str, int] = {}
        self.calls = 0

    # --- bookkeeping ---------------------------------------------------------------------------

    def on_device(self, t: torch.Tensor) -> bool:
        return t in self._on_device

    def _tag(self, out: Any) -> None:
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self._on_device[t] = True

    def place(self, obj: nn.Module | torch.Tensor) -> nn.Module | torch.Tensor:
        """Put a module's parameters and buffers (or a tensor) on the device; returns `obj`."""
        tensors = [*obj.parameters(), *obj.buffers()] if isinstance(obj, nn.Module) else [obj]
        for t in tensors:
            self._on_device[t] = True
        return obj

    def total_syncs(self) -> int:
        return sum(self.syncs.values())

    @contextlib.contextmanager
    def counting(self) -> Iterator[dict[str, int]]:
        """Syncs of the block only: yields a dict filled with them when the block ends."""
        before = dict(self.syncs)
        out: dict[str, int] = {}
        yield out
        for k, v in self.syncs.items():
            if v - before.get(k, 0):
                out[k] = v - before.get(k, 0)

    def __enter__(self) -> DeviceConsistencyMode:
        torch.Generator = _DeviceGenerator  # type: ignore[misc]
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        torch.Generator = _REAL_GENERATOR  # type: ignore[misc]
        super().__exit__(*exc)

    # --- the check -------------------------------------------------------------------------------

    def _target(self, func: Any, args: tuple, kwargs: dict) -> torch.device | None:
        """The device a transfer or factory call asks for (None: the call does not say)."""
        name = _name(func)
        if name == "cpu":
            return torch.device("cpu")
        if "device" in kwargs and kwargs["device"] is not None:
            return _as_device(kwargs["device"])
        if name == "to":
            for a in args[1:]:
                if isinstance(a, torch.Tensor):
                    return self.device if self.on_device(a) else torch.device("cpu")
                dev = _as_device(a)
                if dev is not None:
                    return dev
        return None

    def __torch_function__(self, func: Any, types: tuple, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        self.calls += 1
        name = _name(func)
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        if name == "__get__" and getattr(func, "__self__", None) is _DEVICE_PROPERTY and self.on_device(args[0]):
            return self.device
        real = {t.device.type for t in tensors if t.device.type != "cpu" or t.dim() > 0}
        if len(real) > 1:
            raise DeviceMixError(f"{name}: tensors on devices {sorted(real)} in one call")
        self_on = bool(args) and isinstance(args[0], torch.Tensor) and self.on_device(args[0])
        if name in _SYNCS and self_on:
            self.syncs[name] = self.syncs.get(name, 0) + 1
            if name == "numpy":
                raise DeviceMixError(
                    ".numpy() of a device tensor: CUDA refuses it (call .cpu() first; it is a host sync)"
                )
        target = self._target(func, args, kwargs)
        on = [self.on_device(t) for t in tensors]
        if target is None and any(on):
            host = [tuple(t.shape) for t, o in zip(tensors, on, strict=True) if not o and t.dim() > 0]
            if host and name not in _UNCHECKED:
                raise DeviceMixError(
                    f"{name}: host tensor(s) of shape {host} mixed with tensors on {self.device} "
                    "(a tensor left on the CPU: create it with device=... of its partner)"
                )
        gen = kwargs.get(_RANDOM_KWARG)
        if gen is not None:
            out_on = target == self.device if target is not None else self_on or any(on)
            gen_on = getattr(gen, "wanted", torch.device("cpu")) == self.device
            if gen_on != out_on:
                where = lambda flag: str(self.device) if flag else "cpu"  # noqa: E731
                raise DeviceMixError(
                    f"{name}: a generator on {where(gen_on)} draws a tensor on {where(out_on)} "
                    "(create it with torch.Generator(device=<the tensor's device>))"
                )
        out = func(*args, **kwargs)
        if target is not None:
            src = args[0] if args and isinstance(args[0], torch.Tensor) else None
            if src is not None and out is src and self_on != (target == self.device):
                out = src.view_as(src)  # the source stays where it is; the transfer's result is a new tensor
            if target == self.device:
                self._tag(out)
            return out
        if name in _TO_HOST:
            return out
        if any(on) or (name == "__set__" and self_on):
            self._tag(out)
        if name == "__set__" and len(args) == 2 and isinstance(args[1], torch.Tensor) and self.on_device(args[1]):
            self._tag(args[0])  # param.data = tensor on the device (Module.to)
        return out
