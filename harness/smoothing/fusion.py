"""How the m explanation maps of one image are fused into one (the one registry of fusions).

A fusion takes maps (B, m, H, W) and returns (B, H, W); the caller min-max normalises the result.
Most fusions take each sample's map already min-max normalised to [0,1] (what an explainer returns);
those in `RAW_FUSIONS` take the *raw* maps (the method's scores upsampled to image size, before any
normalisation), as Re's code does: it averages the m raw maps and normalises once.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Fusion = Callable[[torch.Tensor], torch.Tensor]


def fuse_mean(maps: torch.Tensor) -> torch.Tensor:
    """Element-wise mean over samples; maps (B, m, H, W) -> (B, H, W)."""
    return maps.mean(dim=1)


def fuse_max(maps: torch.Tensor) -> torch.Tensor:
    """Element-wise max over samples."""
    return maps.amax(dim=1)


def fuse_drop_low_max(maps: torch.Tensor, quantile: float = 0.1) -> torch.Tensor:
    """FViT's fusion: zero the values below each map's 10th percentile, then element-wise max."""
    flat = maps.flatten(2)
    cut = torch.quantile(flat, quantile, dim=2, keepdim=True)
    kept = torch.where(flat < cut, torch.zeros_like(flat), flat)
    return kept.amax(dim=1).view(maps.shape[0], *maps.shape[2:])


# mean: mean of the per-sample [0,1]-normalised maps (carlini's default here);
# raw_mean: mean of the raw maps, then one min-max normalisation (Re's code; `re`'s default).
FUSIONS: dict[str, Fusion] = {
    "mean": fuse_mean,
    "max": fuse_max,
    "drop_low_max": fuse_drop_low_max,
    "raw_mean": fuse_mean,
}
RAW_FUSIONS = frozenset({"raw_mean"})


def get_fusion(name: str) -> Fusion:
    try:
        return FUSIONS[name]
    except KeyError:
        raise KeyError(f"unknown fusion {name!r}; choose from {sorted(FUSIONS)}") from None


def uses_raw_maps(name: str) -> bool:
    """Whether fusion `name` takes the samples' raw (unnormalised) maps."""
    get_fusion(name)
    return name in RAW_FUSIONS
