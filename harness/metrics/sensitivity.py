"""Max-sensitivity (Yeh, Hsieh, Suggala, Inouye, Ravikumar, NeurIPS 2019), Monte Carlo.

SENS_max(x) = max over ||y - x||_inf <= r of ||Phi(y) - Phi(x)||_2 / ||Phi(x)||_2, estimated as the max
over `samples` points y drawn uniformly from the L-infinity ball of radius r ([0, 1] pixel units,
clipped to [0, 1]) - a lower bound of the true max. Phi is the explainer's map ((B, H, W), min-max
normalised to [0, 1] by the registry); the norm is the Frobenius norm of the whole map, relative to the
clean map's (the "relative_l2" unit; a zero clean map divides by 1 instead). Lower is better.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

RADIUS = 2 / 255
SAMPLES = 8


def max_relative_change(clean_maps: torch.Tensor, perturbed_maps: torch.Tensor) -> torch.Tensor:
    """(B,) max over samples of ||m_s - m||_2 / ||m||_2; perturbed_maps is (S, B, ...), clean (B, ...)."""
    if perturbed_maps.shape[1:] != clean_maps.shape:
        raise ValueError(f"perturbed maps {tuple(perturbed_maps.shape)} are not (S, *{tuple(clean_maps.shape)})")
    diff = (perturbed_maps - clean_maps[None]).flatten(2).norm(dim=2)
    ref = clean_maps.flatten(1).norm(dim=1)
    ref = torch.where(ref > 0, ref, torch.ones_like(ref))
    return (diff / ref[None]).amax(dim=0)


def max_sensitivity(
    explainer: Callable[..., torch.Tensor],
    model,
    images: torch.Tensor,
    target: torch.Tensor | None = None,
    radius: float = RADIUS,
    samples: int = SAMPLES,
    seed: int = 0,
) -> torch.Tensor:
    """(B,) Monte Carlo max-sensitivity of `explainer(model, images, target)` at L-inf radius `radius`.

    target None: the class the model predicts on the clean image, for the clean and every perturbed copy.
    """
    if not 0.0 <= radius <= 1.0:
        raise ValueError(f"radius {radius} is not in [0, 1] pixel units")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if target is None:  # every perturbed copy explains the clean prediction
        with torch.no_grad():
            target = model(images).argmax(dim=1)
    gen = torch.Generator(device=images.device).manual_seed(seed)
    clean = explainer(model, images, target)
    perturbed = []
    for _ in range(samples):
        noise = (torch.rand(images.shape, generator=gen, device=images.device) * 2 - 1) * radius
        perturbed.append(explainer(model, (images + noise).clamp(0, 1), target))
    return max_relative_change(clean, torch.stack(perturbed))
