"""FViT's faithfulness measures (Hu et al., ICML 2024; docs/PROTOCOL.md section 1).

An explanation is faithful within a radius R if, for inputs x' with ||x' - x|| <= R,
(a) the top-k indices of the explanation stay stable: the top-k overlap ratio
    V_k(w(x), w(x')) = |T_k(w(x)) ∩ T_k(w(x'))| / k is high, and
(b) the prediction stays stable.
These are pure functions over two batches of maps (or logits): the caller produces x' (noise, an
attack within the radius, DDS) and the maps.

A constant (degenerate) map has no top-k: its overlap is NaN, undefined, never 1.0.
Top-k selection is deterministic: a stable descending sort, so among equal values the lower
row-major index is taken first. k is either a count (int >= 1) or a fraction of the map's entries
(float in (0, 1], k = int(fraction * N), floor, as the perturbation test counts pixels).
Maps may be patch scores (B, N) or pixel maps (B, H, W): all axes after the batch are flattened.
"""

from __future__ import annotations

from numbers import Integral, Real

import torch


def resolve_k(k: int | float, num_entries: int) -> int:
    """A top-k size from a count or a fraction of `num_entries`; raises when it is 0 or above N."""
    if isinstance(k, bool) or not isinstance(k, Real):
        raise TypeError(f"k must be an int count or a float fraction, got {type(k).__name__}")
    if not isinstance(k, Integral):
        if not 0.0 < k <= 1.0:
            raise ValueError(f"a fractional k must lie in (0, 1], got {k}")
        count = int(k * num_entries)
        if count < 1:
            raise ValueError(f"k = {k} of {num_entries} entries selects no entry")
        return count
    if not 1 <= k <= num_entries:
        raise ValueError(f"k = {k} is outside [1, {num_entries}] (the number of map entries)")
    return int(k)


def topk_indices(maps: torch.Tensor, k: int | float) -> torch.Tensor:
    """(B, k) row-major indices of the k largest entries of each map (stable: ties to the lower index)."""
    flat = maps.detach().reshape(maps.shape[0], -1)
    count = resolve_k(k, flat.shape[1])
    return torch.sort(flat, dim=1, descending=True, stable=True).indices[:, :count]


def constant_maps(maps: torch.Tensor) -> torch.Tensor:
    """(B,) True where a map is constant (max == min): it ranks no entry above another."""
    flat = maps.detach().reshape(maps.shape[0], -1)
    return flat.amax(dim=1) == flat.amin(dim=1)


def topk_overlap(maps_a: torch.Tensor, maps_b: torch.Tensor, k: int | float) -> torch.Tensor:
    """(B,) FViT's top-k overlap ratio |T_k(a) ∩ T_k(b)| / k per pair of maps, in [0, 1].

    NaN where either map is constant: a constant map has no top-k (tie-breaking alone would pick
    the same first k entries for two constant maps and score 1.0), so the overlap is undefined;
    callers exclude and count these pairs.
    """
    if maps_a.shape != maps_b.shape or maps_a.ndim < 2:
        raise ValueError(
            f"need two batches of maps of equal shape (B, ...); got {tuple(maps_a.shape)}, {tuple(maps_b.shape)}"
        )
    for m in (maps_a, maps_b):
        if not torch.isfinite(m).all():
            raise ValueError("maps contain NaN or infinite values")
    ia, ib = topk_indices(maps_a, k), topk_indices(maps_b, k)
    n = maps_a[0].numel()
    in_a = torch.zeros(ia.shape[0], n, dtype=torch.bool, device=ia.device).scatter_(1, ia, True)
    in_b = torch.zeros(ib.shape[0], n, dtype=torch.bool, device=ib.device).scatter_(1, ib, True)
    overlap = (in_a & in_b).sum(dim=1).float() / ia.shape[1]
    undefined = constant_maps(maps_a) | constant_maps(maps_b)
    return torch.where(undefined, torch.full_like(overlap, float("nan")), overlap)


def prediction_agreement(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """(B,) 1.0 where the top-1 classes of two batches of logits (or probabilities) agree, else 0.0.

    Also accepts two (B,) tensors of class indices.
    """
    if logits_a.shape != logits_b.shape:
        raise ValueError(f"shapes differ: {tuple(logits_a.shape)} vs {tuple(logits_b.shape)}")
    if logits_a.ndim == 2:
        return (logits_a.argmax(dim=1) == logits_b.argmax(dim=1)).float()
    if logits_a.ndim == 1 and not logits_a.is_floating_point() and not logits_b.is_floating_point():
        return (logits_a == logits_b).float()
    raise ValueError(f"expected (B, C) logits or (B,) integer class indices; got shape {tuple(logits_a.shape)}")


def prediction_tv_distance(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """(B,) total-variation distance 0.5 * ||softmax(a) - softmax(b)||_1 between prediction distributions."""
    if logits_a.shape != logits_b.shape or logits_a.ndim != 2:
        raise ValueError(f"expected two (B, C) logit tensors; got {tuple(logits_a.shape)}, {tuple(logits_b.shape)}")
    pa, pb = logits_a.double().softmax(dim=1), logits_b.double().softmax(dim=1)
    return 0.5 * (pa - pb).abs().sum(dim=1)
