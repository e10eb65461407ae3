"""LRP-based methods: full LRP, partial LRP (Voita) and Transformer Attribution (docs/PROTOCOL.md section 3)."""

from __future__ import annotations

import torch

from harness.explainers.lrp_vit import (
    FULL_LRP_RULES,
    TA_RULES,
    LRPRules,
    attention_gradients,
    propagate,
    trace_forward,
)
from harness.explainers.registry import register
from harness.models.classifier import ViTClassifier


def _full_rules(shared_denominator: bool) -> LRPRules:
    return LRPRules(shared_denominator, normalised_residual=FULL_LRP_RULES.normalised_residual)


@register(
    "lrp",
    class_specific=True,
    description="Full LRP (Chefer's baseline): one-hot relevance to the pixels, summed over RGB.",
    shared_denominator=False,
)
def full_lrp(
    model: ViTClassifier, images: torch.Tensor, target: torch.Tensor, shared_denominator: bool
) -> torch.Tensor:
    """Pixel relevance (B, H, W). shared_denominator=True switches the Linear rule to TA's conserving one."""
    trace = trace_forward(model, images)
    rel = propagate(model, trace, target, _full_rules(shared_denominator), to_pixels=True)
    return rel.pixels.sum(dim=1)


@register(
    "partial_lrp",
    class_specific=True,
    description="Partial LRP (Voita): positive relevance at the last block's attention, head mean, CLS row.",
    shared_denominator=False,
)
def partial_lrp(
    model: ViTClassifier, images: torch.Tensor, target: torch.Tensor, shared_denominator: bool
) -> torch.Tensor:
    trace = trace_forward(model, images)
    last = len(trace.blocks) - 1
    rel = propagate(model, trace, target, _full_rules(shared_denominator), stop_block=last)
    return rel.attention[last].clamp(min=0).mean(dim=1)[:, 0, 1:]


def relevance_rollout(matrices: list[torch.Tensor]) -> torch.Tensor:
    """C = (M_L + I) ... (M_s + I) for matrices (B, N, N) given first to last; no row normalisation."""
    eye = torch.eye(matrices[0].shape[-1], dtype=matrices[0].dtype, device=matrices[0].device)
    joint = matrices[0] + eye
    for m in matrices[1:]:
        joint = (m + eye) @ joint
    return joint


@register(
    "transformer_attribution",
    class_specific=True,
    description="Transformer Attribution (Chefer CVPR 2021; FViT's VTA): rollout of mean_h (dA * R^A)^+.",
    start_layer=1,
)
def transformer_attribution(
    model: ViTClassifier, images: torch.Tensor, target: torch.Tensor, start_layer: int
) -> torch.Tensor:
    """start_layer=1 as in Chefer's evaluation scripts (block 0 is skipped)."""
    depth = len(model.vit.blocks)
    if not 0 <= start_layer < depth:
        raise ValueError(f"start_layer={start_layer} must lie in [0, {depth}) for a {depth}-block ViT")
    trace = trace_forward(model, images, attention_grad=True)
    grads = attention_gradients(trace, target)
    rel = propagate(model, trace, target, TA_RULES, stop_block=start_layer)
    cams = [(grads[b] * rel.attention[b]).clamp(min=0).mean(dim=1) for b in range(start_layer, depth)]
    return relevance_rollout(cams)[:, 0, 1:]
