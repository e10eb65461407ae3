"""How the m explanation maps of one image are fused into one (the one registry of fusions)."""

from __future__ import annotations

from collections.abc import Callable

import torch

Fusion = Callable[[torch.Tensor], torch.Tensor]


def fuse_mean(maps: torch.Tensor) -> torch.Tensor:
    """Element-wise mean over samples; maps (B, m, H, W) -> (B, H, W). The Re variant's fusion."""
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


FUSIONS: dict[str, Fusion] = {"mean": fuse_mean, "max": fuse_max, "drop_low_max": fuse_drop_low_max}


def get_fusion(name: str) -> Fusion:
    try:
        return FUSIONS[name]
    except KeyError:
        raise KeyError(f"unknown fusion {name!r}; choose from {sorted(FUSIONS)}") from None
