"""Baseline maps: references an explanation method must beat, and the claims' negative controls.

They are registered with `baseline=True`, so runs of "every method" leave them out unless named.
- random_map: uniform random patch scores, seeded by the image's bytes: a function of the input
  (the same image always gets the same map), unrelated to the model.
- centre_map: a Gaussian bump on the patch grid's centre (std = a quarter of the grid), the same for
  every input: perfectly stable under any attack, and no explanation.
- constant_map: all patches equal. Degenerate: it has no top-k and no foreground.
"""

from __future__ import annotations

import hashlib

import torch

from harness.explainers.registry import register
from harness.models.classifier import ViTClassifier


def _image_seed(image: torch.Tensor) -> int:
    digest = hashlib.blake2b(image.detach().cpu().contiguous().numpy().tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


@register(
    "random_map",
    class_specific=False,
    baseline=True,
    description="Baseline: uniform random patch scores seeded by the image's bytes (a function of the input).",
)
def random_map(model: ViTClassifier, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    n = model.grid_size**2
    maps = [torch.rand(n, generator=torch.Generator().manual_seed(_image_seed(img))) for img in images]
    return torch.stack(maps).to(images.device)


@register(
    "centre_map",
    class_specific=False,
    baseline=True,
    description="Baseline: a Gaussian bump centred on the patch grid (std = grid/4), the same for every input.",
)
def centre_map(model: ViTClassifier, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    g = model.grid_size
    coords = torch.arange(g, dtype=torch.float32) - (g - 1) / 2
    r2 = coords.view(-1, 1) ** 2 + coords.view(1, -1) ** 2
    bump = torch.exp(-r2 / (2 * (g / 4) ** 2)).flatten()
    return bump.expand(images.shape[0], -1).to(images.device)


@register(
    "constant_map",
    class_specific=False,
    baseline=True,
    description="Baseline: every patch scores the same (a degenerate map: no top-k, no foreground).",
)
def constant_map(model: ViTClassifier, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.ones(images.shape[0], model.grid_size**2, device=images.device)
