"""Attention-only methods: raw attention and rollout (docs/PROTOCOL.md section 3)."""

from __future__ import annotations

import torch

from harness.explainers.hooks import capture_attention
from harness.explainers.registry import register
from harness.models.classifier import ViTClassifier
from harness.models.tokens import num_prefix_tokens

HEAD_FUSIONS = ("mean", "max", "min")


def fuse_heads(a: torch.Tensor, head_fusion: str) -> torch.Tensor:
    """(B, H, N, N) -> (B, N, N) by mean, max or min over the head axis."""
    if head_fusion == "mean":
        return a.mean(dim=1)
    if head_fusion == "max":
        return a.amax(dim=1)
    if head_fusion == "min":
        return a.amin(dim=1)
    raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")


def _attentions(model: ViTClassifier, images: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad(), capture_attention(model) as rec:
        model(images)
    return rec.attentions


@register(
    "raw_attention",
    class_specific=False,
    description="Mean over heads of the last block's CLS attention.",
    head_fusion="mean",
)
def raw_attention(model: ViTClassifier, images: torch.Tensor, target: torch.Tensor, head_fusion: str) -> torch.Tensor:
    return fuse_heads(_attentions(model, images)[-1], head_fusion)[:, 0, num_prefix_tokens(model) :]


def rollout_matrix(attentions: list[torch.Tensor], start_layer: int = 0, head_fusion: str = "mean") -> torch.Tensor:
    """J = Ahat_L ... Ahat_s with Ahat_b = row-normalised (fused_h A_b + I); (B, N, N), row-stochastic."""
    if not 0 <= start_layer < len(attentions):
        raise ValueError(f"start_layer={start_layer} leaves no blocks of {len(attentions)}")
    n = attentions[0].shape[-1]
    eye = torch.eye(n, dtype=attentions[0].dtype, device=attentions[0].device)
    joint = None
    for a in attentions[start_layer:]:
        ahat = fuse_heads(a, head_fusion) + eye
        ahat = ahat / ahat.sum(dim=-1, keepdim=True)
        joint = ahat if joint is None else ahat @ joint
    return joint


@register(
    "rollout",
    class_specific=False,
    description="Attention rollout (Abnar & Zuidema), Chefer's evaluation start layer 1.",
    start_layer=1,
    head_fusion="mean",
)
def rollout(
    model: ViTClassifier, images: torch.Tensor, target: torch.Tensor, start_layer: int, head_fusion: str
) -> torch.Tensor:
    return rollout_matrix(_attentions(model, images), start_layer, head_fusion)[:, 0, num_prefix_tokens(model) :]
