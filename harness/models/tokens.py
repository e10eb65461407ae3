"""The token layout of a ViT: how many prefix tokens (class, distillation, register) come before the patches."""

from __future__ import annotations

from torch import nn


def num_prefix_tokens(model: nn.Module) -> int:
    """Prefix tokens before the patch tokens of `model` (a ViTClassifier or a timm ViT); row 0 is the class token.

    timm's `num_prefix_tokens`: 1 for ViT, 2 for distilled DeiT (class + distillation), 1 + R with R registers.
    """
    vit = getattr(model, "vit", model)
    if getattr(vit, "cls_token", None) is None:
        raise ValueError(f"{type(vit).__name__} has no class token: the explainers read the class token's row")
    return int(getattr(vit, "num_prefix_tokens", 1))
