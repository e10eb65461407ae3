"""Attention GradCAM (Chefer's baseline; docs/PROTOCOL.md section 3): heads are the channels."""

from __future__ import annotations

import torch

from harness.explainers.hooks import attention_and_gradients
from harness.explainers.registry import register
from harness.models.classifier import ViTClassifier
from harness.models.tokens import num_prefix_tokens


@register(
    "attn_gradcam",
    class_specific=True,
    description="Last block's attention: ReLU(mean_h w_h A_L[h,0,1:]), w_h = mean_j dA_L[h,0,j].",
)
def attn_gradcam(model: ViTClassifier, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    attentions, grads = attention_and_gradients(model, images, target)
    p = num_prefix_tokens(model)
    a, g = attentions[-1][:, :, 0, p:], grads[-1][:, :, 0, p:]
    weights = g.mean(dim=-1, keepdim=True)
    return (weights * a).mean(dim=1).clamp(min=0)
