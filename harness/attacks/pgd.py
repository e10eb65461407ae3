"""PGD L-infinity on the prediction, by the papers' protocol (docs/PROTOCOL.md section 5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.models.classifier import ViTClassifier


def check_radius(radius: float) -> float:
    """An L-infinity radius in [0,1] pixel units (8/255 = 0.0314); anything else is an error."""
    radius = float(radius)
    if not (0.0 <= radius <= 1.0) or radius != radius:
        raise ValueError(f"attack radius {radius} is out of range: it is in [0,1] pixel units (e.g. 8/255)")
    return radius


def random_start_noise(images: torch.Tensor, radius: float, seed: int) -> torch.Tensor:
    """U(-radius, radius) noise drawn exactly as torchattacks' PGD draws its start.

    torchattacks calls ``torch.empty_like(x).uniform_(-eps, eps)`` on the global RNG; we call the
    same kernel on a private generator seeded with `seed`, which yields the same stream as the
    global RNG after ``torch.manual_seed(seed)``. So `pgd_linf(..., seed=s)` equals torchattacks'
    PGD run right after ``torch.manual_seed(s)`` (tests/test_attacks.py), without touching global state.
    """
    gen = torch.Generator(device=images.device).manual_seed(seed)
    return torch.empty_like(images).uniform_(-radius, radius, generator=gen)


def pgd_linf(
    model: ViTClassifier,
    images: torch.Tensor,
    radius: float,
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    target: torch.Tensor | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Untargeted PGD: maximise cross-entropy of `target` (default: the predicted class).

    images and the result are in [0,1] pixel space; radius and step_size (default radius/5) are
    in the same units; the classifier applies its own normalisation. radius = 0 returns the input.
    """
    radius = check_radius(radius)
    if radius == 0.0 or steps == 0:
        return images.clone()
    step_size = radius / 5.0 if step_size is None else float(step_size)
    with torch.no_grad():
        label = model(images).argmax(1) if target is None else target
    adv = images.detach().clone()
    if random_start:
        adv = (adv + random_start_noise(images, radius, seed)).clamp(0, 1)
    for _ in range(steps):
        adv.requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(model(adv), label)
            (grad,) = torch.autograd.grad(loss, adv)
        adv = adv.detach() + step_size * grad.sign()
        adv = (images + (adv - images).clamp(-radius, radius)).clamp(0, 1).detach()
    return adv
