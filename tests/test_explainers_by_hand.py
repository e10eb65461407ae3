"""Each method on a 1-block ViT (1 head, and 2 heads for the head layout) equals a value computed here.

The reference forward below is written with unfold/matmul/explicit LayerNorm (not timm's modules),
A and dA come from autograd on that forward, and the LRP references use the "gradient trick"
(R_in = x * d(z)/dx applied to S = R / z, as in Chefer's code) rather than the explicit transposed
products of `harness.explainers.lrp_vit`. Everything runs in float64 on one image.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer

from harness.explainers.registry import get_spec
from harness.models.classifier import ViTClassifier

EPS = 1e-9
TOL = dict(rtol=1e-6, atol=1e-9)


@pytest.fixture(scope="module", params=[1, 2], ids=["1head", "2heads"])
def one_block(request):
    torch.manual_seed(3)
    vit = VisionTransformer(
        img_size=8,
        patch_size=4,
        embed_dim=4,
        depth=1,
        num_heads=request.param,
        mlp_ratio=2.0,
        num_classes=3,
        qkv_bias=True,
    )
    with torch.no_grad():
        for p in vit.parameters():
            p.copy_(torch.randn_like(p) * 0.7)
    model = ViTClassifier(vit, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), name="one-block").double()
    image = torch.rand(1, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    return model, image


def layer_norm(z: torch.Tensor, ln: torch.nn.LayerNorm) -> torch.Tensor:
    mu = z.mean(-1, keepdim=True)
    var = ((z - mu) ** 2).mean(-1, keepdim=True)
    return (z - mu) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias


def split_heads(t: torch.Tensor, h: int) -> torch.Tensor:
    return t.reshape(t.shape[0], h, -1).transpose(0, 1)


def merge_heads(t: torch.Tensor) -> torch.Tensor:
    return t.transpose(0, 1).reshape(t.shape[1], -1)


def reference_forward(model: ViTClassifier, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """Explicit algebra for a 1-block ViT on one image; every intermediate (per-head ones as (H, N, .))."""
    vit, blk = model.vit, model.vit.blocks[0]
    d, h = vit.embed_dim, blk.attn.num_heads
    f = {"pixels": (image - 0.5) / 0.5}
    cols = F.unfold(f["pixels"], kernel_size=4, stride=4)[0].T  # (patches, 3*4*4)
    patches = cols @ vit.patch_embed.proj.weight.reshape(d, -1).T + vit.patch_embed.proj.bias
    f["tokens"] = torch.cat([vit.cls_token[0], patches])
    f["pos"] = vit.pos_embed[0]
    f["x"] = f["tokens"] + f["pos"]
    f["n1"] = layer_norm(f["x"], blk.norm1)
    qkv = f["n1"] @ blk.attn.qkv.weight.T + blk.attn.qkv.bias
    f["q"], f["k"], f["v"] = (split_heads(qkv[:, i * d : (i + 1) * d], h) for i in range(3))
    f["A"] = torch.softmax(f["q"] @ f["k"].transpose(1, 2) / math.sqrt(d // h), dim=-1)
    f["ctx"] = merge_heads(f["A"] @ f["v"])
    f["ao"] = f["ctx"] @ blk.attn.proj.weight.T + blk.attn.proj.bias
    f["mid"] = f["x"] + f["ao"]
    f["n2"] = layer_norm(f["mid"], blk.norm2)
    f["h"] = F.gelu(f["n2"] @ blk.mlp.fc1.weight.T + blk.mlp.fc1.bias)
    f["mlp"] = f["h"] @ blk.mlp.fc2.weight.T + blk.mlp.fc2.bias
    f["out"] = f["mid"] + f["mlp"]
    f["pooled"] = layer_norm(f["out"], vit.norm)[0]
    f["logits"] = f["pooled"] @ vit.head.weight.T + vit.head.bias
    return f


def ref_safe_divide(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    den = b.clamp(min=EPS) + b.clamp(max=EPS)
    den = den + den.eq(0).to(den.dtype) * EPS
    return a / den * b.ne(0).to(b.dtype)


def grad_trick(fn, inputs: list[torch.Tensor], relevance: torch.Tensor) -> list[torch.Tensor]:
    """z-rule by the gradient trick: R_i = x_i * d<z, S>/dx_i with S = R / z."""
    xs = [x.detach().requires_grad_(True) for x in inputs]
    z = fn(*xs)
    grads = torch.autograd.grad(z, xs, ref_safe_divide(relevance, z.detach()))
    return [x.detach() * g for x, g in zip(xs, grads, strict=True)]


def ref_linear(x: torch.Tensor, w: torch.Tensor, r: torch.Tensor, shared: bool) -> torch.Tensor:
    px, nx = x.clamp(min=0).detach().requires_grad_(True), x.clamp(max=0).detach().requires_grad_(True)
    pw, nw = w.clamp(min=0).detach(), w.clamp(max=0).detach()
    z1, z2 = px @ pw.T, nx @ nw.T
    s1 = ref_safe_divide(r, (z1 + z2).detach() if shared else z1.detach())
    s2 = ref_safe_divide(r, (z1 + z2).detach() if shared else z2.detach())
    (g1,) = torch.autograd.grad(z1, px, s1)
    (g2,) = torch.autograd.grad(z2, nx, s2)
    return px.detach() * g1 + nx.detach() * g2


def ref_add(x: torch.Tensor, y: torch.Tensor, r: torch.Tensor, normalised: bool) -> list[torch.Tensor]:
    a, b = grad_trick(torch.add, [x, y], r)
    if normalised:
        a_sum, b_sum = a.sum(), b.sum()
        a_fact = ref_safe_divide(a_sum.abs(), a_sum.abs() + b_sum.abs()) * r.sum()
        b_fact = ref_safe_divide(b_sum.abs(), a_sum.abs() + b_sum.abs()) * r.sum()
        a, b = a * ref_safe_divide(a_fact, a_sum), b * ref_safe_divide(b_fact, b_sum)
    return [a, b]


def reference_lrp(model: ViTClassifier, f: dict, target: int, shared: bool, normalised: bool) -> dict:
    """Relevance at A (halved share) and at the pixels for the 1-block model."""
    vit, blk = model.vit, model.vit.blocks[0]
    onehot = F.one_hot(torch.tensor(target), 3).to(torch.float64)
    r_out = torch.zeros_like(f["out"])
    r_out[0] = ref_linear(f["pooled"], vit.head.weight, onehot, shared)
    r_mid, r_mlp = ref_add(f["mid"], f["mlp"], r_out, normalised)
    r_h = ref_linear(f["h"], blk.mlp.fc2.weight, r_mlp, shared)
    r_mid = r_mid + ref_linear(f["n2"], blk.mlp.fc1.weight, r_h, shared)
    r_x, r_ao = ref_add(f["x"], f["ao"], r_mid, normalised)
    r_ctx = split_heads(ref_linear(f["ctx"], blk.attn.proj.weight, r_ao, shared), blk.attn.num_heads)
    r_a, r_v = (t / 2 for t in grad_trick(torch.matmul, [f["A"], f["v"]], r_ctx))
    # Chefer's order: relevance of the unscaled q k^T, the softmax and the scale pass it through.
    r_q, r_k = (t / 2 for t in grad_trick(lambda q, k: q @ k.transpose(1, 2), [f["q"], f["k"]], r_a))
    r_qkv = torch.cat([merge_heads(r_q), merge_heads(r_k), merge_heads(r_v)], dim=1)
    r_x = r_x + ref_linear(f["n1"], blk.attn.qkv.weight, r_qkv, shared)
    r_tokens, _ = ref_add(f["tokens"], f["pos"], r_x, normalised)
    # z^B rule on the conv, by the gradient trick over X, L and H.
    conv = vit.patch_embed.proj
    x_img = f["pixels"].detach().requires_grad_(True)
    low = torch.full_like(x_img, x_img.min().item()).requires_grad_(True)
    high = torch.full_like(x_img, x_img.max().item()).requires_grad_(True)
    za = (
        F.conv2d(x_img, conv.weight, stride=4)
        - F.conv2d(low, conv.weight.clamp(min=0), stride=4)
        - F.conv2d(high, conv.weight.clamp(max=0), stride=4)
        + EPS
    )
    r_patch = r_tokens[1:].T.reshape(1, -1, 2, 2)
    gx, gl, gh = torch.autograd.grad(za, [x_img, low, high], r_patch / za.detach())
    pixels = x_img * gx + low * gl + high * gh
    return {"A": r_a.detach(), "pixels": pixels.detach().sum(dim=1)}


def attention_and_grad(model: ViTClassifier, image: torch.Tensor, target: int, logit: str = "logits"):
    f = reference_forward(model, image)
    (g,) = torch.autograd.grad(f[logit][target], f["A"])
    return f, f["A"].detach(), g


def run(model: ViTClassifier, image: torch.Tensor, name: str, target: int, **options) -> torch.Tensor:
    spec = get_spec(name)
    return spec.fn(model, image, torch.tensor([target]), **{**spec.defaults, **options})[0]


@pytest.mark.parametrize("target", [0, 2])
def test_reference_forward_is_timm(one_block, target):
    model, image = one_block
    torch.testing.assert_close(reference_forward(model, image)["logits"], model(image)[0], **TOL)


def test_raw_attention_and_rollout_by_hand(one_block):
    model, image = one_block
    _, a, _ = attention_and_grad(model, image, 0)
    torch.testing.assert_close(run(model, image, "raw_attention", 0), a.mean(0)[0, 1:], **TOL)
    ahat = a.mean(0) + torch.eye(5, dtype=a.dtype)
    ahat = ahat / ahat.sum(dim=1, keepdim=True)
    torch.testing.assert_close(run(model, image, "rollout", 0, start_layer=0), ahat[0, 1:], **TOL)


@pytest.mark.parametrize("target", [0, 1, 2])
def test_gradcam_and_generic_by_hand(one_block, target):
    model, image = one_block
    _, a, g = attention_and_grad(model, image, target)
    gradcam = (g[:, 0, 1:].mean(dim=1, keepdim=True) * a[:, 0, 1:]).mean(0).clamp(min=0)
    torch.testing.assert_close(run(model, image, "attn_gradcam", target), gradcam, **TOL)
    generic = torch.eye(5, dtype=a.dtype) + (g * a).clamp(min=0).mean(0) @ torch.eye(5, dtype=a.dtype)
    torch.testing.assert_close(run(model, image, "generic_attention", target), generic[0, 1:], **TOL)


@pytest.mark.parametrize("target", [0, 1, 2])
def test_lrp_methods_by_hand(one_block, target):
    model, image = one_block
    f, a, g = attention_and_grad(model, image, target)
    full = reference_lrp(model, f, target, shared=False, normalised=False)
    torch.testing.assert_close(run(model, image, "lrp", target), full["pixels"][0], **TOL)
    partial = full["A"].clamp(min=0).mean(0)[0, 1:]
    torch.testing.assert_close(run(model, image, "partial_lrp", target), partial, **TOL)
    ta = reference_lrp(model, f, target, shared=True, normalised=True)
    cam = (g * ta["A"]).clamp(min=0).mean(0) + torch.eye(5, dtype=a.dtype)
    ta_map = run(model, image, "transformer_attribution", target, start_layer=0)
    torch.testing.assert_close(ta_map, cam[0, 1:], **TOL)


def test_attribution_rollout_by_hand(one_block):
    model, image = one_block
    top = int(model(image).argmax())
    _, a, g = attention_and_grad(model, image, top)  # one block: the early exit F_1 is the logits
    m = (0.5 * a * g).amax(0) + torch.eye(5, dtype=a.dtype)
    m = m / m.sum(dim=1, keepdim=True)
    other = (top + 1) % 3
    # The reference code explains the top class whatever target is passed.
    torch.testing.assert_close(run(model, image, "attribution_rollout", other), m[0, 1:], **TOL)
    _, a2, g2 = attention_and_grad(model, image, other)
    m2 = (0.5 * a2 * g2).amax(0) + torch.eye(5, dtype=a.dtype)
    m2 = m2 / m2.sum(dim=1, keepdim=True)
    explained = run(model, image, "attribution_rollout", other, top_class=False)
    torch.testing.assert_close(explained, m2[0, 1:], **TOL)
