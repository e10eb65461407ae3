"""The embedded world's models: a tiny timm ViT and a tiny diffusers UNet, shipped as safetensors."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file
from timm.models.vision_transformer import VisionTransformer

from harness.data.embedded import IMAGE_SIZE, NUM_CLASSES
from harness.models.classifier import ViTClassifier

ASSETS = Path(__file__).parent / "assets"
MINI_VIT_DIR = ASSETS / "mini_vit"
MINI_DENOISER_DIR = ASSETS / "mini_denoiser"

MINI_VIT_CONFIG: dict = dict(
    img_size=IMAGE_SIZE, patch_size=8, embed_dim=96, depth=6, num_heads=4, mlp_ratio=4.0, num_classes=NUM_CLASSES
)
MINI_VIT_NORM = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))

MINI_UNET_CONFIG: dict = dict(
    sample_size=IMAGE_SIZE,
    in_channels=3,
    out_channels=3,
    block_out_channels=(16, 32, 64, 128),
    layers_per_block=1,
    down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"),
    norm_num_groups=8,
    attention_head_dim=32,
)
# The paper's schedule (guided-diffusion linear betas).
MINI_SCHEDULER_CONFIG: dict = dict(
    num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", prediction_type="epsilon"
)


def build_mini_vit() -> VisionTransformer:
    """A randomly initialised tiny ViT with the shipped architecture."""
    return VisionTransformer(**MINI_VIT_CONFIG)


def save_mini_vit(vit: VisionTransformer, directory: Path, meta: dict | None = None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(directory / "model.safetensors"))
    config = {"architecture": MINI_VIT_CONFIG, **MINI_VIT_NORM, "meta": meta or {}}
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def load_mini_vit(directory: str | Path = MINI_VIT_DIR) -> ViTClassifier:
    """Load the tiny ViT from a folder holding config.json and model.safetensors."""
    directory = Path(directory)
    weights, config_path = directory / "model.safetensors", directory / "config.json"
    for path in (config_path, weights):
        if not path.is_file():
            raise FileNotFoundError(
                f"mini ViT checkpoint file missing: {path}. Regenerate it with `fvit-bench train-mini vit`."
            )
    config = json.loads(config_path.read_text())
    vit = VisionTransformer(**config["architecture"])
    try:
        vit.load_state_dict(load_file(str(weights)))
    except Exception as err:  # safetensors raises its own error type for corrupt files
        raise ValueError(f"{weights} does not hold weights for the mini ViT architecture: {err}") from err
    return ViTClassifier(vit, config["mean"], config["std"], name="mini-vit")
