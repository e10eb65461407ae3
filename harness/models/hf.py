"""Hugging Face `transformers` ViTForImageClassification checkpoints behind the same ViTClassifier.

A local folder with config.json and model.safetensors (optionally preprocessor_config.json for the
normalisation) is mapped, tensor by tensor, onto a timm VisionTransformer of the same architecture
(query/key/value concatenated into timm's qkv), so every explainer and attack runs on it unchanged.
`transformers` itself is not needed to load; the tests compare the logits against it. Nothing downloads.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import torch
from safetensors.torch import load_file
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from harness.models.classifier import ViTClassifier

SUPPORTED_ACT = "gelu"


def timm_config_from_hf(config: dict) -> dict:
    """timm VisionTransformer kwargs for a HF ViTConfig dict; raises on what the mapping does not cover."""
    act = config.get("hidden_act", SUPPORTED_ACT)
    if act != SUPPORTED_ACT:
        raise ValueError(f"HF ViT hidden_act {act!r} is not supported (only exact 'gelu', timm's GELU)")
    if not config.get("qkv_bias", True):
        raise ValueError("HF ViT with qkv_bias false is not supported")
    labels = config.get("id2label") or {}
    return dict(
        img_size=config.get("image_size", 224),
        patch_size=config.get("patch_size", 16),
        in_chans=config.get("num_channels", 3),
        embed_dim=config["hidden_size"],
        depth=config["num_hidden_layers"],
        num_heads=config["num_attention_heads"],
        mlp_ratio=config["intermediate_size"] / config["hidden_size"],
        qkv_bias=True,
        num_classes=len(labels) if labels else config.get("num_labels", 2),
        norm_layer=partial(nn.LayerNorm, eps=config.get("layer_norm_eps", 1e-12)),
    )


def timm_state_from_hf(state: dict[str, torch.Tensor], depth: int) -> dict[str, torch.Tensor]:
    """Rename (and fuse q, k, v of) a ViTForImageClassification state dict into timm's keys."""
    e, out = "vit.embeddings.", {}
    out["cls_token"] = state[e + "cls_token"]
    out["pos_embed"] = state[e + "position_embeddings"]
    out["patch_embed.proj.weight"] = state[e + "patch_embeddings.projection.weight"]
    out["patch_embed.proj.bias"] = state[e + "patch_embeddings.projection.bias"]
    for i in range(depth):
        h, t = f"vit.encoder.layer.{i}.", f"blocks.{i}."
        att = h + "attention.attention."
        for kind in ("weight", "bias"):
            out[t + f"attn.qkv.{kind}"] = torch.cat([state[att + f"{n}.{kind}"] for n in ("query", "key", "value")])
            for src, dst in (
                ("attention.output.dense", "attn.proj"),
                ("intermediate.dense", "mlp.fc1"),
                ("output.dense", "mlp.fc2"),
                ("layernorm_before", "norm1"),
                ("layernorm_after", "norm2"),
            ):
                out[t + f"{dst}.{kind}"] = state[h + f"{src}.{kind}"]
    for kind in ("weight", "bias"):
        out[f"norm.{kind}"] = state[f"vit.layernorm.{kind}"]
        out[f"head.{kind}"] = state[f"classifier.{kind}"]
    return out


def load_hf_vit(directory: str | Path, name: str = "hf-vit") -> ViTClassifier:
    """A local ViTForImageClassification folder as a ViTClassifier (normalisation from preprocessor_config.json,
    else mean = std = 0.5, the HF ViT image processor's default)."""
    directory = Path(directory)
    config_path, weights = directory / "config.json", directory / "model.safetensors"
    for path in (config_path, weights):
        if not path.is_file():
            raise FileNotFoundError(f"HF ViT folder {directory}: {path.name} is missing (save_pretrained writes it)")
    config = json.loads(config_path.read_text())
    if "ViTForImageClassification" not in (config.get("architectures") or ["ViTForImageClassification"]):
        raise ValueError(f"{config_path} describes {config.get('architectures')}, not ViTForImageClassification")
    vit = VisionTransformer(**timm_config_from_hf(config))
    try:
        vit.load_state_dict(timm_state_from_hf(load_file(str(weights)), len(vit.blocks)))
    except (KeyError, RuntimeError) as err:
        raise ValueError(
            f"{weights} does not hold ViTForImageClassification weights matching {config_path}: {err}"
        ) from err
    pre = directory / "preprocessor_config.json"
    norm = json.loads(pre.read_text()) if pre.is_file() else {}
    return ViTClassifier(vit, norm.get("image_mean", (0.5,) * 3), norm.get("image_std", (0.5,) * 3), name=name)
