"""Format-exact stand-ins of the paper-scale files, written at test time (random weights, tiny data).

Each is laid out exactly as the real file a user downloads, only smaller:
- `256x256_diffusion_uncond.pt`: a guided-diffusion state dict with the real key names, shapes and
  flags of the 256x256 unconditional model (image size 256, channel_mult 1,1,2,2,4,4, attention at
  32,16,8, 64-channel heads, learned sigma) at a reduced base width (32 channels instead of 256);
- ViT-B/16 (`model.safetensors` as on the hub, and the legacy `jx_vit_base_p16_224-80ecf9dd.pth` state
  dict) and DeiT-B (`deit_base_patch16_224-b5f2ef4d.pth`, its state dict under 'model'): timm's
  architectures at full width with 2 blocks instead of 12;
- `gtsegs_ijcv.mat`: MATLAB v7.3 / HDF5 with object references and MATLAB's transposed storage;
- an ILSVRC2012 validation folder (flat `ILSVRC2012_val_########.JPEG`, one grayscale and one CMYK JPEG
  among them as in the real set) beside `ILSVRC2012_devkit_t12/data` (ground truth + meta.mat).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image
from safetensors.torch import save_file
from test_adm_convert import random_adm_state_dict
from test_data_imagenet_seg import sample_pair, write_gtsegs
from test_data_imagenet_val import GROUND_TRUTH, write_meta

from harness.models.adm_convert import ADMArchitecture

ADM_WIDTH = 32  # the smallest width GroupNorm(32) allows; real: 256
ADM_STANDIN = ADMArchitecture(model_channels=ADM_WIDTH)  # every other flag as 256x256_diffusion_uncond
VIT_DEPTH = 2  # real: 12 (2: Transformer Attribution starts at block 1)
SEG_IMAGES = 2
VAL_IMAGES = 3  # RGB, grayscale, CMYK


def write_adm(path: Path) -> Path:
    torch.save(random_adm_state_dict(ADM_STANDIN, seed=0), path)
    return path


def _vit_state(timm_name: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = timm.create_model(timm_name, pretrained=False, depth=VIT_DEPTH)
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def write_vit_b16(folder: Path) -> tuple[Path, Path]:
    """(hub model.safetensors, legacy .pth state dict) of ViT-B/16 at reduced depth."""
    folder.mkdir(parents=True, exist_ok=True)
    state = _vit_state("vit_base_patch16_224.orig_in21k_ft_in1k")
    save_file(state, folder / "model.safetensors")
    torch.save(state, folder / "jx_vit_base_p16_224-80ecf9dd.pth")
    return folder / "model.safetensors", folder / "jx_vit_base_p16_224-80ecf9dd.pth"


def write_deit_b(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "deit_base_patch16_224-b5f2ef4d.pth"
    torch.save({"model": _vit_state("deit_base_patch16_224")}, path)
    return path


def write_seg(path: Path) -> Path:
    pairs = [sample_pair(60 + 20 * i, 80 - 10 * i, i) for i in range(SEG_IMAGES)]
    write_gtsegs(path, *zip(*pairs, strict=True))
    return path


def write_val(root: Path) -> Path:
    """root/val/ILSVRC2012_val_*.JPEG (RGB, L, CMYK) + root/ILSVRC2012_devkit_t12/data/{ground truth, meta}."""
    images = root / "val"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k, mode in enumerate(("RGB", "L", "CMYK")):
        number = GROUND_TRUTH[k][0]
        pixels = rng.integers(0, 256, (40 + 10 * k, 50, 3), dtype=np.uint8)
        Image.fromarray(pixels).convert(mode).save(images / f"ILSVRC2012_val_{number:08d}.JPEG", "JPEG")
    data = root / "ILSVRC2012_devkit_t12" / "data"
    data.mkdir(parents=True)
    (data / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{i}\n" for _, i in GROUND_TRUTH))
    write_meta(data / "meta.mat")
    return images


def write_all(root: Path) -> dict[str, Path]:
    """Every stand-in under `root`; returns the paths by role."""
    root.mkdir(parents=True, exist_ok=True)
    vit_st, vit_pth = write_vit_b16(root / "vit_b16")
    return {
        "adm": write_adm(root / "256x256_diffusion_uncond.pt"),
        "vit_safetensors": vit_st,
        "vit_pth": vit_pth,
        "deit_pth": write_deit_b(root / "deit_b"),
        "seg": write_seg(root / "gtsegs_ijcv.mat"),
        "val": write_val(root / "imagenet"),
    }
