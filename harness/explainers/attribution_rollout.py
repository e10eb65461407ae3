"""Attribution Rollout (Xu et al. 2023; docs/PROTOCOL.md section 3), batched.

Per block b an early-exit logit F_b = head(norm(x_b)) on the block output x_b; G_b = dF_b[t] / dA_b.
The reference code's "integrated gradient" sums alpha * G_b over 20 alphas in [0, 1] (the gradient is
not re-evaluated) and divides by 20, which is exactly 0.5 * G_b. M_b = max over heads of 0.5 A_b G_b
(no clamp), Mhat_b = (M_b + I) row-normalised, J = Mhat_L ... Mhat_s, map = J[0, 1:].
"""

from __future__ import annotations

import torch

from harness.explainers.attention import fuse_heads
from harness.explainers.hooks import capture_attention
from harness.explainers.registry import register
from harness.models.classifier import ViTClassifier
from harness.models.tokens import num_prefix_tokens

IG_FACTOR = 0.5  # sum_{alpha in linspace(0, 1, 20)} alpha / 20
ROW_SUM_EPS = 1e-9


def early_exit_gradients(
    model: ViTClassifier, images: torch.Tensor, target: torch.Tensor
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """A_b and G_b = d F_b[t] / d A_b for every block b, F_b the head applied to block b's output."""
    vit = model.vit
    outputs: list[torch.Tensor] = []
    handles = [blk.register_forward_hook(lambda _m, _i, out: outputs.append(out)) for blk in vit.blocks]
    try:
        with torch.enable_grad(), capture_attention(model) as rec:
            model(images.detach().requires_grad_(True))
            grads = []
            for x_b, a_b in zip(outputs, rec.attentions, strict=True):
                f_b = vit.forward_head(vit.norm(x_b))
                score = f_b.gather(1, target.view(-1, 1)).sum()
                grads.append(torch.autograd.grad(score, a_b, retain_graph=True)[0])
    finally:
        for h in handles:
            h.remove()
    return [a.detach() for a in rec.attentions], grads


def safe_row_normalise(m: torch.Tensor, eps: float = ROW_SUM_EPS) -> torch.Tensor:
    """Divide each row by its sum; sums within eps of 0 are replaced by +-eps (M_b + I can sum to ~0)."""
    s = m.sum(dim=-1, keepdim=True)
    tiny = s.abs() < eps
    return m / torch.where(tiny, torch.where(s < 0, -eps, eps).to(s.dtype), s)


@register(
    "attribution_rollout",
    class_specific=lambda options: not options["top_class"],
    description="Attribution Rollout (Xu 2023): rollout of max_h 0.5*A*dF_b/dA with early-exit logits F_b; "
    "class-agnostic with top_class=True (the reference code: it explains the top class), class-specific otherwise.",
    start_layer=0,
    head_fusion="max",
    top_class=True,
)
def attribution_rollout(
    model: ViTClassifier,
    images: torch.Tensor,
    target: torch.Tensor,
    start_layer: int,
    head_fusion: str,
    top_class: bool,
) -> torch.Tensor:
    """top_class=True (the reference code) explains each image's predicted class whatever `target` says."""
    depth = len(model.vit.blocks)
    if not 0 <= start_layer < depth:
        raise ValueError(f"start_layer={start_layer} must lie in [0, {depth}) for a {depth}-block ViT")
    if top_class:
        with torch.no_grad():
            target = model(images).argmax(dim=1)
    attentions, grads = early_exit_gradients(model, images, target)
    eye = torch.eye(attentions[0].shape[-1], dtype=attentions[0].dtype, device=attentions[0].device)
    joint = None
    for a, g in list(zip(attentions, grads, strict=True))[start_layer:]:
        mhat = safe_row_normalise(fuse_heads(IG_FACTOR * a * g, head_fusion) + eye)
        joint = mhat if joint is None else mhat @ joint
    return joint[:, 0, num_prefix_tokens(model) :]
