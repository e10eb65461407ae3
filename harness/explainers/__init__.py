"""Explanation methods for timm ViTs behind one registry (see `registry`)."""

from harness.explainers.registry import (
    Explainer,
    explain,
    get_explainer,
    names,
    normalise_maps,
    register,
    resolve_target,
)

__all__ = ["Explainer", "explain", "get_explainer", "names", "normalise_maps", "register", "resolve_target"]
