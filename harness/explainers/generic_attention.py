"""Generic attention explainability (Chefer, Gur, Wolf, ICCV 2021) for a ViT (docs/PROTOCOL.md section 3)."""

from __future__ import annotations

import torch

from harness.explainers.hooks import attention_and_gradients
from harness.explainers.registry import register
from harness.models.classifier import ViTClassifier
from harness.models.tokens import num_prefix_tokens


def generic_relevance(attentions: list[torch.Tensor], grads: list[torch.Tensor]) -> torch.Tensor:
    """R = I; for each block in order R <- R + mean_h (dA_b * A_b)^+ R; returns R (B, N, N)."""
    a0 = attentions[0]
    r = torch.eye(a0.shape[-1], dtype=a0.dtype, device=a0.device).expand(a0.shape[0], -1, -1)
    for a, g in zip(attentions, grads, strict=True):
        r = r + (g * a).clamp(min=0).mean(dim=1) @ r
    return r


@register(
    "generic_attention",
    class_specific=True,
    description="Chefer ICCV 2021 generic attention explainability: R += mean_h (dA*A)^+ R, CLS row.",
)
def generic_attention(model: ViTClassifier, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    attentions, grads = attention_and_gradients(model, images, target)
    return generic_relevance(attentions, grads)[:, 0, num_prefix_tokens(model) :]
