"""Classifiers by name: the embedded mini ViT, or a paper-scale timm ViT from a local weights file."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import timm
import torch

from harness.models.classifier import ViTClassifier
from harness.models.mini import MINI_VIT_DIR, load_mini_vit

# name -> (timm model name, environment variable for the weights file, where to obtain it)
PAPER_MODELS: dict[str, tuple[str, str, str]] = {
    "vit_base_patch16_224": (
        "vit_base_patch16_224.orig_in21k_ft_in1k",
        "FVIT_VIT_B16_WEIGHTS",
        "jx_vit_base_p16_224-80ecf9dd.pth from the timm/pytorch-image-models v0.1 release "
        "(github.com/huggingface/pytorch-image-models/releases), or the hub repo "
        "timm/vit_base_patch16_224.orig_in21k_ft_in1k (model.safetensors)",
    ),
    "deit_base_patch16_224": (
        "deit_base_patch16_224",
        "FVIT_DEIT_B_WEIGHTS",
        "deit_base_patch16_224-b5f2ef4d.pth from facebookresearch/deit (README, DeiT-base), or the hub repo "
        "timm/deit_base_patch16_224.fb_in1k (model.safetensors)",
    ),
}
MODEL_NAMES = ("mini-vit", *PAPER_MODELS, "hf-vit", "timm:<name>")


def paper_weights_path(name: str, weights: str | Path | None = None) -> Path:
    """The local weights file of a paper model: the argument, else its environment variable."""
    timm_name, env, source = PAPER_MODELS[name]
    path = weights or os.environ.get(env)
    if not path:
        raise FileNotFoundError(
            f"{name}: no weights file given. Pass --weights PATH or set {env}=PATH to a local copy of {source}."
        )
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name}: weights file {path} does not exist. Obtain {source}.")
    return path


def timm_classifier(vit, name: str) -> ViTClassifier:
    """A timm ViT with a class token (DeiT incl. distilled, DINO, register tokens) behind the [0,1] interface."""
    if getattr(vit, "cls_token", None) is None:
        raise ValueError(f"{name}: the explainers need a class token; this model has none")
    if int(getattr(vit, "num_classes", 0)) < 1:
        raise ValueError(
            f"{name}: no classification head (num_classes 0, e.g. a DINO backbone): fit a linear head "
            "and save the whole model, or pass num_classes"
        )
    cfg = getattr(vit, "pretrained_cfg", None) or {}
    return ViTClassifier(vit, cfg.get("mean", (0.5,) * 3), cfg.get("std", (0.5,) * 3), name=name)


def load_timm_vit(timm_name: str, weights: str | Path | None) -> ViTClassifier:
    """Any timm ViT with a class token from a local weights file (timm's own loader; nothing downloads)."""
    if weights is None or not Path(weights).is_file():
        raise FileNotFoundError(f"timm:{timm_name}: pass --weights PATH to a local weights file (got {weights})")
    try:
        vit = timm.create_model(
            timm_name, pretrained=True, pretrained_cfg_overlay=dict(file=str(weights), custom_load=False)
        )
    except Exception as err:  # timm raises a variety of errors for a wrong name or file
        raise ValueError(f"{weights} could not be loaded as timm model {timm_name}: {err}") from err
    return timm_classifier(vit, f"timm:{timm_name}")


PAPER_DEPTH = 12  # ViT-B/16 and DeiT-B: 12 blocks
_BLOCK_KEY = re.compile(r"^(?:module\.)?blocks\.(\d+)\.")


def checkpoint_depth(path: str | Path) -> int | None:
    """Number of transformer blocks stored in a timm ViT checkpoint (.safetensors, or a torch state
    dict, possibly under 'model' / 'state_dict' as DeiT's); None if it names no `blocks.N.` keys."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # a legacy (non-zip) file cannot be memory-mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict):
            for key in ("model", "state_dict"):
                if isinstance(state.get(key), dict):
                    state = state[key]
                    break
        keys = list(state) if isinstance(state, dict) else []
    blocks = {int(m.group(1)) for k in keys if (m := _BLOCK_KEY.match(str(k)))}
    return max(blocks) + 1 if blocks else None


def load_classifier(name: str, weights: str | Path | None = None) -> ViTClassifier:
    """Load a classifier behind the [0,1] interface; paper models load only from local files."""
    if name == "mini-vit":
        return load_mini_vit(weights or MINI_VIT_DIR)
    if name == "hf-vit":
        from harness.models.hf import load_hf_vit

        if weights is None:
            raise FileNotFoundError("hf-vit: pass --weights DIR, a local ViTForImageClassification folder")
        return load_hf_vit(weights)
    if name.startswith("timm:"):
        return load_timm_vit(name.removeprefix("timm:"), weights)
    if name not in PAPER_MODELS:
        raise KeyError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
    path = paper_weights_path(name, weights)
    timm_name = PAPER_MODELS[name][0]
    arch: dict = {}
    try:
        depth = checkpoint_depth(path)
    except Exception as err:  # pickle/zip/safetensors errors come in many types
        raise ValueError(f"{path} could not be read as a {timm_name} checkpoint: {err}") from err
    if depth is not None and depth != PAPER_DEPTH:  # e.g. the reduced-depth stand-ins of the tests
        warnings.warn(
            f"{path} holds a {depth}-block ViT, not the published {PAPER_DEPTH} blocks: building "
            f"{timm_name} with depth={depth}",
            stacklevel=2,
        )
        arch["depth"] = depth
    try:
        vit = timm.create_model(
            timm_name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path), custom_load=False), **arch
        )
    except Exception as err:  # timm raises a variety of errors for a wrong or corrupt file
        raise ValueError(f"{path} could not be loaded as {timm_name}: {err}") from err
    cfg = vit.pretrained_cfg
    return ViTClassifier(vit, cfg["mean"], cfg["std"], name=name)
