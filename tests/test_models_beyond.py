"""More ViTs behind ViTClassifier, on random tiny weights: DeiT (distilled: two special tokens), DINO,
register tokens, and Hugging Face ViTForImageClassification; the explainers read the prefix-token count."""

import pytest
import timm
import torch
from timm.models.vision_transformer import VisionTransformer

from harness.explainers.builtin import BUILTIN_METHODS
from harness.explainers.registry import explain
from harness.models.tokens import num_prefix_tokens
from harness.models.zoo import timm_classifier

TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=5)
LRP_FAMILY = ("lrp", "partial_lrp", "transformer_attribution")  # LRP rules cover one prefix token only


def _tiny(kind: str):
    torch.manual_seed(0)
    if kind == "deit":
        return timm.create_model("deit_base_patch16_224", pretrained=False, **TINY), 1
    if kind == "deit_distilled":
        return timm.create_model("deit_base_distilled_patch16_224", pretrained=False, **TINY), 2
    if kind == "dino":
        return timm.create_model("vit_base_patch16_224.dino", pretrained=False, **TINY), 1
    if kind == "registers":
        return VisionTransformer(reg_tokens=4, **TINY), 5
    raise KeyError(kind)


@pytest.mark.parametrize("kind", ["deit", "deit_distilled", "dino", "registers"])
def test_timm_vits_explain_with_their_token_layout(kind):
    vit, prefix = _tiny(kind)
    model = timm_classifier(vit, kind)
    assert num_prefix_tokens(model) == prefix
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for method in BUILTIN_METHODS:
        if prefix != 1 and method in LRP_FAMILY:
            with pytest.raises(NotImplementedError, match="prefix token"):
                explain(method, model, images)
            continue
        maps = explain(method, model, images)
        assert maps.shape == (2, 32, 32) and torch.isfinite(maps).all(), (kind, method)


def test_prefix_tokens_select_the_patch_columns():
    """raw attention is the class row over the patch columns only: the prefix columns are left out."""
    from harness.explainers.hooks import capture_attention

    vit, prefix = _tiny("registers")
    model = timm_classifier(vit, "registers")
    images = torch.rand(1, 3, 32, 32)
    with torch.no_grad(), capture_attention(model) as rec:
        model(images)
    row = rec.attentions[-1].mean(dim=1)[0, 0]
    assert row.shape[0] == prefix + 16
    expected = row[prefix:].view(1, 4, 4)
    got = explain("raw_attention", model, images)
    up = torch.nn.functional.interpolate(expected[None], size=(32, 32), mode="bilinear", align_corners=False)[0]
    up = (up - up.min()) / (up.max() - up.min())
    assert torch.allclose(got, up, atol=1e-5)


def test_headless_and_tokenless_models_are_refused():
    with pytest.raises(ValueError, match="classification head"):
        timm_classifier(VisionTransformer(**{**TINY, "num_classes": 0}), "dino-backbone")
    with pytest.raises(ValueError, match="class token"):
        timm_classifier(VisionTransformer(**TINY, class_token=False, global_pool="avg"), "gap")


def test_hf_vit_matches_transformers_logits(tmp_path):
    transformers = pytest.importorskip("transformers")
    from harness.models.hf import load_hf_vit
    from harness.models.zoo import load_classifier

    config = transformers.ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=5,
    )
    torch.manual_seed(0)
    hf = transformers.ViTForImageClassification(config).eval()
    hf.save_pretrained(tmp_path)
    model = load_hf_vit(tmp_path)
    assert num_prefix_tokens(model) == 1 and model.num_classes == 5 and model.grid_size == 4
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = hf(pixel_values=(images - 0.5) / 0.5).logits
        assert torch.allclose(model(images), expected, atol=1e-5)
    assert torch.equal(load_classifier("hf-vit", tmp_path)(images).detach(), model(images).detach())
    for method in BUILTIN_METHODS:
        assert explain(method, model, images).shape == (3, 32, 32)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_hf_vit(tmp_path)
