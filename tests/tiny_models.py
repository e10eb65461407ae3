"""Random models smaller than the embedded world's, for tests whose checks do not depend on model size
(bookkeeping: which cells a table has, how many UNet calls a run makes, what FLOPs it counts).

- `tiny_vit`: the embedded ViT (64 px, patch 8, width 96) with 2 blocks instead of 6 (Transformer
  Attribution starts at block 1);
- `tiny_denoiser`: a 1-level diffusers UNet at 16 px (one down and one up block; the mid block with its
  attention kept) on the paper's linear schedule; the `Denoiser` resizes 64 px images to it and back.
"""

from __future__ import annotations

import torch

TINY_VIT_DEPTH = 2
TINY_UNET = dict(
    sample_size=16,
    block_out_channels=(16,),
    down_block_types=("DownBlock2D",),
    up_block_types=("UpBlock2D",),
    attention_head_dim=8,
)


def tiny_vit(seed: int = 0):
    from timm.models.vision_transformer import VisionTransformer

    from harness.models.classifier import ViTClassifier
    from harness.models.mini import MINI_VIT_CONFIG, MINI_VIT_NORM

    torch.manual_seed(seed)
    vit = VisionTransformer(**{**MINI_VIT_CONFIG, "depth": TINY_VIT_DEPTH})
    return ViTClassifier(vit, **MINI_VIT_NORM, name="random-tiny-vit")


def tiny_denoiser(seed: int = 0):
    from diffusers import UNet2DModel

    from harness.models.denoiser import Denoiser
    from harness.models.mini import MINI_UNET_CONFIG
    from harness.smoothing.timesteps import linear_alphas_cumprod

    torch.manual_seed(seed)
    return Denoiser(UNet2DModel(**{**MINI_UNET_CONFIG, **TINY_UNET}), linear_alphas_cumprod(), name="random-tiny-unet")
