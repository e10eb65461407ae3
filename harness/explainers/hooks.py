"""Capture each block's post-softmax attention (and, on request, its gradient) from a timm ViT."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from harness.models.classifier import ViTClassifier, disable_fused_attention


class AttentionRecord:
    """Per-block attention tensors A_b (B, H, N, N) of the last forward, in block order."""

    def __init__(self) -> None:
        self.attentions: list[torch.Tensor] = []

    def gradients(self) -> list[torch.Tensor]:
        """dy/dA_b for every block (requires the capture to have been opened with grad=True)."""
        grads = [a.grad for a in self.attentions]
        if any(g is None for g in grads):
            raise RuntimeError("attention gradients missing: open capture_attention(..., grad=True) and backward()")
        return grads


@contextmanager
def capture_attention(model: ViTClassifier, grad: bool = False) -> Iterator[AttentionRecord]:
    """Record A_b via forward hooks on `blocks[b].attn.attn_drop` (fused attention must be off).

    With grad=True each A_b retains its gradient, so after `backward()` `record.gradients()`
    returns dA_b.
    """
    record = AttentionRecord()
    disable_fused_attention(model.vit)

    def hook(_module, _inputs, output):
        if grad:
            output.retain_grad()
        record.attentions.append(output)

    handles = []
    for block in model.vit.blocks:
        attn_drop = getattr(block.attn, "attn_drop", None)
        if attn_drop is None:
            raise TypeError(f"{type(block.attn).__name__} has no attn_drop module to hook the attention matrix")
        handles.append(attn_drop.register_forward_hook(hook))
    try:
        yield record
    finally:
        for h in handles:
            h.remove()
    if not record.attentions:
        raise RuntimeError("no attention was captured: is fused attention still on in a custom Attention module?")


def attention_and_gradients(
    model: ViTClassifier, images: torch.Tensor, target: torch.Tensor
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Each block's A_b and dA_b = d y_t / d A_b (y_t: logit of target[i] for image i), batched.

    Uses `torch.autograd.grad`, so the model parameters' .grad stays untouched; works under no_grad.
    """
    with torch.enable_grad(), capture_attention(model) as rec:
        logits = model(images.detach().requires_grad_(True))
        score = logits.gather(1, target.view(-1, 1)).sum()
        grads = torch.autograd.grad(score, rec.attentions)
    return [a.detach() for a in rec.attentions], list(grads)
