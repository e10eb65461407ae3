"""Differentiable forms of the explanation methods, for attacks on the map itself.

Registered explainers return detached maps; these recompute a method's patch scores (B, N_patches)
with the graph kept (gradient methods by double backpropagation, `create_graph=True`), with the same
definitions as `harness.explainers`. Each sample explains its own predicted class. A method without a
differentiable form here is attacked through a named surrogate (`SURROGATES`), never silently through
the prediction: `attack_form` says which.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from harness.explainers.attention import rollout_matrix
from harness.explainers.generic_attention import generic_relevance
from harness.explainers.hooks import capture_attention
from harness.models.classifier import ViTClassifier
from harness.models.tokens import num_prefix_tokens

ScoreFn = Callable[[ViTClassifier, torch.Tensor], torch.Tensor]


def _attentions(model: ViTClassifier, images: torch.Tensor) -> list[torch.Tensor]:
    with capture_attention(model) as rec:
        model(images)
    return rec.attentions


def _attentions_and_grads(model: ViTClassifier, images: torch.Tensor) -> tuple[list, list]:
    if not images.requires_grad:  # a reference map: nothing flows back to the input, the graph must still exist
        images = images.detach().requires_grad_(True)
    with torch.enable_grad(), capture_attention(model) as rec:
        logits = model(images)
        target = logits.detach().argmax(dim=1)
        score = logits.gather(1, target.view(-1, 1)).sum()
        grads = torch.autograd.grad(score, rec.attentions, create_graph=True)
    return rec.attentions, list(grads)


def raw_attention_scores(model: ViTClassifier, images: torch.Tensor) -> torch.Tensor:
    """Mean over heads of the last block's class-token row."""
    return _attentions(model, images)[-1].mean(dim=1)[:, 0, num_prefix_tokens(model) :]


def rollout_scores(model: ViTClassifier, images: torch.Tensor, start_layer: int = 1) -> torch.Tensor:
    """Rollout from start layer 1, as the registered `rollout`."""
    return rollout_matrix(_attentions(model, images), start_layer)[:, 0, num_prefix_tokens(model) :]


def attn_gradcam_scores(model: ViTClassifier, images: torch.Tensor) -> torch.Tensor:
    """ReLU(mean_h w_h A_L[h, 0, p:]), w_h = mean_j dA_L[h, 0, j], as the registered `attn_gradcam`."""
    attentions, grads = _attentions_and_grads(model, images)
    p = num_prefix_tokens(model)
    a, g = attentions[-1][:, :, 0, p:], grads[-1][:, :, 0, p:]
    return (g.mean(dim=-1, keepdim=True) * a).mean(dim=1).clamp(min=0)


def generic_attention_scores(model: ViTClassifier, images: torch.Tensor) -> torch.Tensor:
    """Chefer's generic attention relevance (R += mean_h (dA * A)^+ R), class-token row."""
    attentions, grads = _attentions_and_grads(model, images)
    return generic_relevance(attentions, grads)[:, 0, num_prefix_tokens(model) :]


DIFFERENTIABLE_METHODS: dict[str, ScoreFn] = {
    "raw_attention": raw_attention_scores,
    "rollout": rollout_scores,
    "attn_gradcam": attn_gradcam_scores,
    "generic_attention": generic_attention_scores,
}
# method -> the differentiable method its attack goes through, and why that one.
SURROGATES: dict[str, tuple[str, str]] = {
    "lrp": (
        "generic_attention",
        "LRP relevance through every block; generic attention is Chefer's "
        "gradient-weighted relevance through every block",
    ),
    "transformer_attribution": ("generic_attention", "Chefer's ICCV 2021 simplification of Transformer Attribution"),
    "partial_lrp": (
        "attn_gradcam",
        "both read the last block's class-token attention, weighted by relevance or by gradient",
    ),
    "attribution_rollout": (
        "generic_attention",
        "gradient-weighted attention accumulated over the blocks (early-exit gradients are not differentiated)",
    ),
}


def attack_form(method: str) -> tuple[ScoreFn, str]:
    """(differentiable score function, label): label "exact" or "surrogate:<method>"."""
    if method in DIFFERENTIABLE_METHODS:
        return DIFFERENTIABLE_METHODS[method], "exact"
    if method in SURROGATES:
        name = SURROGATES[method][0]
        return DIFFERENTIABLE_METHODS[name], f"surrogate:{name}"
    raise ValueError(
        f"no differentiable form or surrogate of {method!r} to attack; exact: "
        f"{sorted(DIFFERENTIABLE_METHODS)}, surrogates: {sorted(SURROGATES)}"
    )


def attackable_methods() -> tuple[str, ...]:
    return tuple(sorted({*DIFFERENTIABLE_METHODS, *SURROGATES}))
