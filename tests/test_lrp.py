"""The LRP-capable forward and its relevance rules (harness/explainers/lrp_vit.py)."""

from __future__ import annotations

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from harness.explainers import explain
from harness.explainers.lrp_vit import (
    FULL_LRP_RULES,
    TA_RULES,
    LRPRules,
    first_conv_relevance,
    linear_relevance,
    matmul_relevance,
    propagate,
    residual_relevance,
    safe_divide,
    trace_forward,
)
from harness.models.classifier import ViTClassifier
from harness.models.mini import MINI_VIT_CONFIG, MINI_VIT_NORM, build_mini_vit

GEN = torch.Generator().manual_seed(0)


def randn(*shape: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=GEN, dtype=dtype)


@pytest.fixture
def images():
    return torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("batch", [1, 3])
def test_trace_logits_equal_timm(random_mini_vit, batch):
    x = torch.rand(batch, 3, 64, 64, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        expected = random_mini_vit(x)
    torch.testing.assert_close(trace_forward(random_mini_vit, x).logits, expected, rtol=0, atol=1e-5)


def test_trace_forward_with_grad_leaves_parameter_grads_alone(random_mini_vit, images):
    from harness.explainers.lrp_vit import attention_gradients

    trace = trace_forward(random_mini_vit, images, attention_grad=True)
    grads = attention_gradients(trace, torch.tensor([0, 1, 2]))
    assert len(grads) == MINI_VIT_CONFIG["depth"]
    assert all(g.shape == a.shape for g, a in zip(grads, trace.attentions, strict=True))
    assert all(p.grad is None for p in random_mini_vit.parameters())


# ----------------------------------------------------------------------------- rules one by one
def test_safe_divide_matches_the_reference_semantics():
    a = torch.tensor([1.0, 1.0, 1.0, 2.0], dtype=torch.float64)
    b = torch.tensor([0.0, -1e-9, 2.0, -4.0], dtype=torch.float64)
    out = safe_divide(a, b)
    assert out[0] == 0 and torch.isfinite(out).all()  # b == 0 -> 0; b + eps == 0 is guarded
    torch.testing.assert_close(out[2:], a[2:] / (b[2:] + 1e-9))


@pytest.mark.parametrize("shared", [True, False])
def test_linear_rule_conserves_each_part(shared):
    x, w, r = randn(5, 7), randn(4, 7), randn(5, 4)
    r_in = linear_relevance(x, w, r, shared_denominator=shared)
    z_pos = x.clamp(min=0) @ w.clamp(min=0).T
    z_neg = x.clamp(max=0) @ w.clamp(max=0).T
    # shared: the input relevance of each row sums to the output relevance; one denominator per
    # part: each nonzero part carries the full relevance again.
    parts = torch.ones_like(r) if shared else (z_pos != 0).double() + (z_neg != 0).double()
    expected = (r * parts).sum(dim=1)
    torch.testing.assert_close(r_in.sum(dim=1), expected, rtol=1e-7, atol=1e-7)


def test_linear_rule_ignores_negative_contributions():
    x = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    w = torch.tensor([[3.0, -1.0]], dtype=torch.float64)  # contributions +3 and -2: only +3 counts
    r_in = linear_relevance(x, w, torch.ones(1, 1, dtype=torch.float64), shared_denominator=True)
    torch.testing.assert_close(r_in, torch.tensor([[1.0, 0.0]], dtype=torch.float64), rtol=1e-8, atol=1e-8)


def test_matmul_rule_gives_each_operand_the_full_relevance():
    a, b, r = randn(2, 3, 4, 5), randn(2, 3, 5, 6), randn(2, 3, 4, 6)
    ra, rb = matmul_relevance(a, b, r)
    torch.testing.assert_close(ra.sum(dim=(-1, -2)), r.sum(dim=(-1, -2)), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(rb.sum(dim=(-1, -2)), r.sum(dim=(-1, -2)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("normalised", [True, False])
def test_residual_rule_conserves_per_sample(normalised):
    x, y, r = randn(3, 4, 5), randn(3, 4, 5), randn(3, 4, 5)
    rx, ry = residual_relevance(x, y, r, normalised=normalised)
    if normalised:  # per sample, the whole total, split by |sum of z-rule shares|
        torch.testing.assert_close((rx + ry).sum(dim=(1, 2)), r.sum(dim=(1, 2)), rtol=1e-7, atol=1e-7)
        zx, zy = residual_relevance(x, y, r, normalised=False)
        share = zx.sum(dim=(1, 2)).abs() / (zx.sum(dim=(1, 2)).abs() + zy.sum(dim=(1, 2)).abs())
        torch.testing.assert_close(rx.sum(dim=(1, 2)), share * r.sum(dim=(1, 2)), rtol=1e-7, atol=1e-7)
    else:  # elementwise z-rule: x and y share r in proportion to their values
        torch.testing.assert_close(rx + ry, r, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(rx * y, ry * x, rtol=1e-6, atol=1e-6)


def test_first_conv_rule_conserves_and_respects_bounds():
    conv = torch.nn.Conv2d(3, 6, kernel_size=4, stride=4).double()
    pixels = randn(2, 3, 8, 8)
    r = randn(2, 6, 2, 2)
    r_pix = first_conv_relevance(pixels, conv, r)
    assert r_pix.shape == pixels.shape
    torch.testing.assert_close(r_pix.sum(dim=(1, 2, 3)), r.sum(dim=(1, 2, 3)), rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- whole network
# Tolerance: every safe division adds eps = 1e-9 to its denominator, which leaks a fraction
# eps/|z| of the relevance; on the random tiny ViT the leak summed over the 6 blocks is ~1e-6 in
# float64, so 1e-5 separates it from a rule error (which is O(1)). In float32 rounding in the
# z-rule shares of nearly cancelling residual sums dominates: ~1e-4, so 1e-3 there.
CONSERVATION_TOL = {torch.float64: 1e-5, torch.float32: 1e-3}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_ta_rules_conserve_relevance_through_all_blocks(dtype, images):
    torch.manual_seed(0)
    model = ViTClassifier(build_mini_vit(), **MINI_VIT_NORM).to(dtype)
    target = torch.tensor([0, 4, 9])
    rel = propagate(model, trace_forward(model, images.to(dtype)), target, TA_RULES, to_pixels=True)
    ones = torch.ones(3, dtype=dtype)
    tol = CONSERVATION_TOL[dtype]
    for b, r in rel.block_input.items():  # one-hot start: total relevance 1 at every block input
        torch.testing.assert_close(r.sum(dim=(1, 2)), ones, rtol=0, atol=tol, msg=f"block {b}")
    total = rel.tokens.sum(dim=(1, 2)) + rel.pos_embed.sum(dim=(1, 2))
    torch.testing.assert_close(total, ones, rtol=0, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_full_lrp_with_shared_denominator_conserves_down_to_the_pixels(dtype, images):
    """Full LRP's own rules (plain residual z-rule, z^B conv) conserve once the Linear rule does."""
    torch.manual_seed(0)
    model = ViTClassifier(build_mini_vit(), **MINI_VIT_NORM).to(dtype)
    rules = LRPRules(shared_denominator=True, normalised_residual=False)
    trace = trace_forward(model, images.to(dtype))
    rel = propagate(model, trace, torch.tensor([1, 2, 3]), rules, to_pixels=True)
    tol = CONSERVATION_TOL[dtype]
    total = rel.tokens.sum(dim=(1, 2)) + rel.pos_embed.sum(dim=(1, 2))
    torch.testing.assert_close(total, torch.ones(3, dtype=dtype), rtol=0, atol=tol)
    # what reaches the patch tokens reaches the pixels (the CLS token's share stays at the CLS token)
    patch_total = rel.tokens[:, 1:].sum(dim=(1, 2))
    torch.testing.assert_close(rel.pixels.sum(dim=(1, 2, 3)), patch_total, rtol=tol, atol=tol)


def test_protocol_full_lrp_is_not_conservative(random_mini_vit, images):
    """Chefer's full-LRP Linear rule (a denominator per part) multiplies relevance: by design, not a bug."""
    trace = trace_forward(random_mini_vit, images)
    rel = propagate(random_mini_vit, trace, torch.tensor([0, 1, 2]), FULL_LRP_RULES, stop_block=5)
    assert (rel.block_input[5].sum(dim=(1, 2)) - 1).abs().min() > 0.5


def test_lrp_option_switches_the_linear_rule(random_mini_vit, images):
    a = explain("lrp", random_mini_vit, images, target=1)
    b = explain("lrp", random_mini_vit, images, target=1, shared_denominator=True)
    assert a.shape == b.shape == (3, 64, 64) and not torch.allclose(a, b, atol=1e-3)


# ----------------------------------------------------------------------------- bad input
def test_unsupported_vit_configuration_is_named():
    vit = VisionTransformer(
        img_size=16, patch_size=8, embed_dim=8, depth=1, num_heads=2, num_classes=3, global_pool="avg"
    )
    model = ViTClassifier(vit, (0.5,) * 3, (0.5,) * 3)
    with pytest.raises(NotImplementedError, match="global_pool"):
        explain("lrp", model, torch.rand(1, 3, 16, 16))


def test_relevance_to_pixels_needs_all_blocks(random_mini_vit, images):
    with pytest.raises(ValueError, match="stop_block=0"):
        trace = trace_forward(random_mini_vit, images)
        propagate(random_mini_vit, trace, torch.zeros(3).long(), TA_RULES, stop_block=2, to_pixels=True)
