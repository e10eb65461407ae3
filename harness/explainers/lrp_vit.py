"""An LRP-capable forward over the weights of an unchanged timm VisionTransformer (docs/PROTOCOL.md section 3).

`trace_forward` re-runs the timm modules of a `ViTClassifier` step by step and keeps every
activation the relevance rules need; its logits are timm's. `propagate` then sends relevance from
the one-hot e_t at the logits back towards the pixels, batched (every sum is per sample), with
Chefer et al.'s rules:

- Linear layers: alpha=1, beta=0 (only x+ w+ and x- w- contributions, biases ignored); full LRP
  (Chefer's `layers_lrp`) gives each of the two parts its own denominator, TA (`layers_ours`)
  one shared denominator.
- LayerNorm, GELU, softmax, dropout, LayerScale: relevance passes through unchanged.
- The two matmuls (Q K^T and A V): z-rule, each operand's share halved.
- Residual adds: z-rule; TA rescales the two shares so that each gets |sum share| / (|sum a| + |sum b|)
  of the incoming total (conservation-normalised).
- A copied tensor (the residual branch point) sums the relevance of its copies.
- The first conv (patch embedding): z^B rule bounded by the per-image min and max of the normalised image.
- Divisions are safe divisions with eps = 1e-9, as in the reference code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from timm.layers import Attention
from timm.models.vision_transformer import Block
from torch import nn

from harness.models.classifier import ViTClassifier

EPS = 1e-9


@dataclass(frozen=True)
class LRPRules:
    """Which variant of the rules to apply.

    shared_denominator: alpha-beta Linear rule with one denominator for the x+w+ and x-w- parts
        (TA, conserves relevance) instead of one each (Chefer's full-LRP baseline).
    normalised_residual: conservation-normalised residual adds (TA) instead of the plain z-rule.
    """

    shared_denominator: bool
    normalised_residual: bool
    eps: float = EPS


FULL_LRP_RULES = LRPRules(shared_denominator=False, normalised_residual=False)
TA_RULES = LRPRules(shared_denominator=True, normalised_residual=True)


# ----------------------------------------------------------------------------- rules
def safe_divide(a: torch.Tensor, b: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """a / (b + eps), and 0 wherever b == 0 (the reference code's safe_divide, sign of eps included)."""
    den = b + eps
    den = torch.where(den == 0, torch.full_like(den, eps), den)
    return torch.where(b != 0, a / den, torch.zeros_like(den))


def linear_relevance(
    x: torch.Tensor, weight: torch.Tensor, relevance: torch.Tensor, shared_denominator: bool, eps: float = EPS
) -> torch.Tensor:
    """alpha=1, beta=0 rule for y = x W^T (+ b): relevance (..., out) -> (..., in)."""
    px, nx = x.clamp(min=0), x.clamp(max=0)
    pw, nw = weight.clamp(min=0), weight.clamp(max=0)
    z_pos, z_neg = px @ pw.T, nx @ nw.T
    if shared_denominator:
        s_pos = s_neg = safe_divide(relevance, z_pos + z_neg, eps)
    else:
        s_pos, s_neg = safe_divide(relevance, z_pos, eps), safe_divide(relevance, z_neg, eps)
    return px * (s_pos @ pw) + nx * (s_neg @ nw)


def matmul_relevance(
    a: torch.Tensor, b: torch.Tensor, relevance: torch.Tensor, eps: float = EPS
) -> tuple[torch.Tensor, torch.Tensor]:
    """z-rule for z = a @ b (batched matrices): the two operands' full shares (not yet halved)."""
    s = safe_divide(relevance, a @ b, eps)
    return a * (s @ b.transpose(-2, -1)), b * (a.transpose(-2, -1) @ s)


def residual_relevance(
    x: torch.Tensor, y: torch.Tensor, relevance: torch.Tensor, normalised: bool, eps: float = EPS
) -> tuple[torch.Tensor, torch.Tensor]:
    """z-rule for z = x + y; with `normalised` each share is rescaled per sample to conserve the total."""
    s = safe_divide(relevance, x + y, eps)
    rx, ry = x * s, y * s
    if not normalised:
        return rx, ry
    dims = tuple(range(1, relevance.ndim))
    total = relevance.sum(dim=dims, keepdim=True)
    sx, sy = rx.sum(dim=dims, keepdim=True), ry.sum(dim=dims, keepdim=True)
    both = sx.abs() + sy.abs()
    fx = safe_divide(sx.abs(), both, eps) * total
    fy = safe_divide(sy.abs(), both, eps) * total
    return rx * safe_divide(fx, sx, eps), ry * safe_divide(fy, sy, eps)


def first_conv_relevance(
    pixels: torch.Tensor, conv: nn.Conv2d, relevance: torch.Tensor, eps: float = EPS
) -> torch.Tensor:
    """z^B rule for the patch-embedding conv, bounded by each image's min (L) and max (H).

    pixels: (B, 3, H, W) as the conv sees them (normalised); relevance: (B, D, h, w) at its output.
    """
    w = conv.weight
    pw, nw = w.clamp(min=0), w.clamp(max=0)
    low = pixels.amin(dim=(1, 2, 3), keepdim=True).expand_as(pixels)
    high = pixels.amax(dim=(1, 2, 3), keepdim=True).expand_as(pixels)
    kw = dict(stride=conv.stride, padding=conv.padding)
    z = F.conv2d(pixels, w, **kw) - F.conv2d(low, pw, **kw) - F.conv2d(high, nw, **kw) + eps
    s = relevance / z
    size = pixels.shape[-2:]

    def back(weight: torch.Tensor) -> torch.Tensor:
        out = F.conv_transpose2d(s, weight, **kw)
        return F.pad(out, (0, size[1] - out.shape[-1], 0, size[0] - out.shape[-2]))

    return pixels * back(w) - low * back(pw) - high * back(nw)


# ----------------------------------------------------------------------------- forward
@dataclass
class BlockTrace:
    """The activations of one timm Block that its relevance rules read."""

    x: torch.Tensor  # block input (B, N, D)
    norm1: torch.Tensor  # input of qkv (B, N, D)
    q: torch.Tensor  # scaled queries (B, H, N, d)
    k: torch.Tensor
    v: torch.Tensor
    attn: torch.Tensor  # post-softmax attention A (B, H, N, N)
    context: torch.Tensor  # A V merged over heads, input of proj (B, N, H*d)
    attn_out: torch.Tensor  # attention branch output, after LayerScale (B, N, D)
    mid: torch.Tensor  # x + attn_out
    norm2: torch.Tensor  # input of fc1
    hidden: torch.Tensor  # activation output, input of fc2
    mlp_out: torch.Tensor  # MLP branch output, after LayerScale
    out: torch.Tensor  # mid + mlp_out


@dataclass
class ForwardTrace:
    pixels: torch.Tensor  # normalised image, the conv's input (B, 3, H, W)
    tokens: torch.Tensor  # [CLS, patch embeddings] before the position embedding (B, N, D)
    pos_embed: torch.Tensor  # (B, N, D)
    blocks: list[BlockTrace]
    pooled: torch.Tensor  # final-norm CLS token, input of the head (B, D)
    logits: torch.Tensor

    @property
    def attentions(self) -> list[torch.Tensor]:
        return [b.attn for b in self.blocks]


def check_lrp_support(vit: nn.Module) -> None:
    """Raise NotImplementedError naming the feature if `vit` is outside what the rules cover."""
    problems = []
    if getattr(vit, "cls_token", None) is None or getattr(vit, "num_prefix_tokens", 1) != 1:
        problems.append("exactly one prefix token (the CLS token) is required")
    if getattr(vit, "global_pool", "token") != "token" or getattr(vit, "attn_pool", None) is not None:
        problems.append(f"global_pool must be 'token', got {getattr(vit, 'global_pool', None)!r}")
    if getattr(vit, "no_embed_class", False) or getattr(vit, "dynamic_img_size", False):
        problems.append("no_embed_class / dynamic_img_size position embeddings are not supported")
    if not isinstance(getattr(vit, "head", None), nn.Linear):
        problems.append("the head must be one nn.Linear")
    if not isinstance(getattr(vit, "fc_norm", nn.Identity()), nn.Identity):
        problems.append("fc_norm must be Identity")
    pe = getattr(vit, "patch_embed", None)
    if pe is None or not isinstance(pe.proj, nn.Conv2d) or not isinstance(pe.norm, nn.Identity):
        problems.append("patch_embed must be a plain Conv2d projection without norm")
    for i, blk in enumerate(vit.blocks):
        at = blk.attn
        if type(blk) is not Block or type(at) is not Attention:
            kinds = f"{type(blk).__name__}/{type(at).__name__}"
            problems.append(f"block {i} is {kinds}, not timm Block/Attention")
            continue
        extras = [n for n in ("q_norm", "k_norm", "norm") if not isinstance(getattr(at, n), nn.Identity)]
        if extras or at.gate is not None or not isinstance(blk.mlp.norm, nn.Identity):
            problems.append(f"block {i} uses qk/scale/MLP norms or gating ({extras})")
    if problems:
        name = type(vit).__name__
        raise NotImplementedError(f"{name} is not supported by the LRP forward: " + "; ".join(problems))


def trace_forward(model: ViTClassifier, images: torch.Tensor, attention_grad: bool = False) -> ForwardTrace:
    """Run `model.vit` module by module on [0,1] `images`, keeping the activations LRP needs.

    With attention_grad=True the graph is kept (the input requires grad), so that
    `torch.autograd.grad(logits..., trace.attentions)` gives dA_b; model parameters' .grad is untouched.
    """
    vit = model.vit
    check_lrp_support(vit)
    model.check_images(images)
    with torch.set_grad_enabled(attention_grad):
        pixels = model.normalise(images)
        if attention_grad:
            pixels = pixels.detach().requires_grad_(True)
        patches = vit.patch_embed(pixels)
        b = patches.shape[0]
        tokens = torch.cat([vit.cls_token.expand(b, -1, -1), patches], dim=1)
        pos = vit.pos_embed.expand(b, -1, -1)
        x = vit.norm_pre(tokens + pos)
        traces = []
        for blk in vit.blocks:
            traces.append(_block_forward(blk, x))
            x = traces[-1].out
        pooled = vit.norm(x)[:, 0]
        logits = vit.head(pooled)
    return ForwardTrace(pixels, tokens, pos, traces, pooled, logits)


def _block_forward(blk: Block, x: torch.Tensor) -> BlockTrace:
    at = blk.attn
    b, n, _ = x.shape
    n1 = blk.norm1(x)
    q, k, v = at.qkv(n1).reshape(b, n, 3, at.num_heads, at.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    q = q * at.scale
    attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
    context = (attn @ v).transpose(1, 2).reshape(b, n, at.attn_dim)
    attn_out = blk.ls1(at.proj(context))
    mid = x + attn_out
    n2 = blk.norm2(mid)
    hidden = blk.mlp.act(blk.mlp.fc1(n2))
    mlp_out = blk.ls2(blk.mlp.fc2(hidden))
    return BlockTrace(x, n1, q, k, v, attn, context, attn_out, mid, n2, hidden, mlp_out, mid + mlp_out)


def attention_gradients(trace: ForwardTrace, target: torch.Tensor) -> list[torch.Tensor]:
    """dA_b = d y_t / d A_b for every block (trace from `trace_forward(..., attention_grad=True)`)."""
    with torch.enable_grad():
        score = trace.logits.gather(1, target.view(-1, 1)).sum()
        return list(torch.autograd.grad(score, trace.attentions))


# ----------------------------------------------------------------------------- relevance
@dataclass
class Relevance:
    """Relevance reached at named points of the network (per sample, batched)."""

    attention: dict[int, torch.Tensor] = field(default_factory=dict)  # block -> R at A_b (halved share)
    block_input: dict[int, torch.Tensor] = field(default_factory=dict)  # block -> R at its input x_b
    tokens: torch.Tensor | None = None  # at [CLS, patches] before the position embedding
    pos_embed: torch.Tensor | None = None  # absorbed by the position embedding
    pixels: torch.Tensor | None = None  # (B, 3, H, W) at the normalised image


@torch.no_grad()
def propagate(
    model: ViTClassifier,
    trace: ForwardTrace,
    target: torch.Tensor,
    rules: LRPRules,
    stop_block: int = 0,
    to_pixels: bool = False,
) -> Relevance:
    """Send relevance e_t (one-hot, not times the logit) from the logits down to block `stop_block`.

    With to_pixels=True (requires stop_block=0) it continues through the position-embedding add and
    the patch-embedding conv to the pixels.
    """
    vit, eps = model.vit, rules.eps
    out = Relevance()
    onehot = F.one_hot(target, trace.logits.shape[1]).to(trace.logits.dtype)
    r_pooled = linear_relevance(trace.pooled, vit.head.weight, onehot, rules.shared_denominator, eps)
    r = torch.zeros_like(trace.blocks[-1].out)
    r[:, 0] = r_pooled  # CLS selection; the final LayerNorm passes relevance through
    for i in range(len(trace.blocks) - 1, stop_block - 1, -1):
        r = _block_relevance(vit.blocks[i], trace.blocks[i], r, rules, out, i)
        out.block_input[i] = r
    if to_pixels:
        if stop_block != 0:
            raise ValueError("to_pixels needs stop_block=0")
        r_tokens, r_pos = residual_relevance(trace.tokens, trace.pos_embed, r, rules.normalised_residual, eps)
        out.tokens, out.pos_embed = r_tokens, r_pos
        g = vit.patch_embed.grid_size
        r_patch = r_tokens[:, 1:].transpose(1, 2).reshape(r.shape[0], -1, g[0], g[1])
        out.pixels = first_conv_relevance(trace.pixels.detach(), vit.patch_embed.proj, r_patch, eps)
    return out


def _block_relevance(
    blk: Block, t: BlockTrace, r: torch.Tensor, rules: LRPRules, out: Relevance, index: int
) -> torch.Tensor:
    eps, shared, norm_add = rules.eps, rules.shared_denominator, rules.normalised_residual
    at = blk.attn
    # out = mid + mlp_out
    r_mid, r_mlp = residual_relevance(t.mid, t.mlp_out, r, norm_add, eps)
    r_hidden = linear_relevance(t.hidden, blk.mlp.fc2.weight, r_mlp, shared, eps)
    r_mid = r_mid + linear_relevance(t.norm2, blk.mlp.fc1.weight, r_hidden, shared, eps)
    # mid = x + attn_out
    r_x, r_attn_out = residual_relevance(t.x, t.attn_out, r_mid, norm_add, eps)
    b, n, _ = r.shape
    r_ctx = linear_relevance(t.context, at.proj.weight, r_attn_out, shared, eps)
    r_ctx = r_ctx.reshape(b, n, at.num_heads, at.head_dim).transpose(1, 2)
    r_a, r_v = matmul_relevance(t.attn, t.v, r_ctx, eps)
    r_a, r_v = r_a / 2, r_v / 2
    out.attention[index] = r_a
    r_q, r_k = matmul_relevance(t.q, t.k.transpose(-2, -1), r_a, eps)  # softmax passes relevance through
    r_q, r_k = r_q / 2, r_k.transpose(-2, -1) / 2
    r_qkv = torch.stack([r_q, r_k, r_v], dim=0).permute(1, 3, 0, 2, 4).reshape(b, n, 3 * at.attn_dim)
    return r_x + linear_relevance(t.norm1, at.qkv.weight, r_qkv, shared, eps)
