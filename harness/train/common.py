"""Shared pieces of the training recipes."""

from __future__ import annotations

import platform
import random
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from harness.data.embedded import EmbeddedShapes, stack


def seed_everything(seed: int, threads: int | None) -> int:
    """Seed all RNGs, fix the thread count (weights are bit-identical only for the same count)."""
    if threads is not None:
        torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.get_num_threads()


def training_images(
    length: int | None, seed: int = 0, world: str = "cluttered"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The embedded train split of `world` (the embedded world, or the recipes' "single" curriculum) as
    (images, labels, masks) tensors, rendered once."""
    ds = EmbeddedShapes("train", length=length, seed=seed, world=world)
    return stack(ds, tqdm(range(len(ds)), desc="render train split", leave=False, unit="img"))


def random_dihedral(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Apply an independent random flip and 90-degree rotation to each image (classes are invariant)."""
    n = images.shape[0]
    flips = torch.rand(n, generator=generator) < 0.5
    out = torch.where(flips.view(n, 1, 1, 1), images.flip(-1), images)
    turns = torch.randint(0, 4, (n,), generator=generator)
    for k in range(1, 4):
        sel = turns == k
        if sel.any():
            out[sel] = torch.rot90(out[sel], k, dims=(-2, -1))
    return out


def environment() -> dict:
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }


def _smooth_order(h: int, w: int, generator: torch.Generator) -> torch.Tensor:
    """(h*w,) random smooth field (noise on a 4x4 or 8x8 grid, upsampled bilinearly, ties broken)."""
    grid = 4 if torch.rand(1, generator=generator).item() < 0.5 else 8
    field = torch.rand(1, 1, grid, grid, generator=generator)
    field = F.interpolate(field, size=(h, w), mode="bilinear", align_corners=False).flatten()
    return field + 1e-4 * torch.rand(h * w, generator=generator)


def _delete_top(image: torch.Tensor, field: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Zero the p ~ U(0, 0.9) share of `image`'s pixels that rank highest in `field` (h*w,)."""
    _, h, w = image.shape
    k = int(h * w * 0.9 * torch.rand(1, generator=generator).item())
    drop = torch.zeros(h * w, dtype=torch.bool)
    drop[field.argsort(descending=True)[:k]] = True
    return image.masked_fill(drop.view(1, h, w), 0.0)


def _delete_chosen(
    images: torch.Tensor, fraction: float, generator: torch.Generator, order: Callable[[int], torch.Tensor]
) -> torch.Tensor:
    """Zero the top p ~ U(0, 0.9) share, by `order(i)` (h*w,), of the pixels of a random `fraction` of the images."""
    chosen = torch.rand(images.shape[0], generator=generator) < fraction
    if not chosen.any():
        return images
    out = images.clone()
    for i in chosen.nonzero().flatten().tolist():
        out[i] = _delete_top(out[i], order(i), generator)
    return out


def random_deletion(images: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Zero a random share p ~ U(0, 0.9) of the pixels of a random `fraction` of the images.

    Pixels are deleted in the order of a random smooth field (noise on a 4x4 or 8x8 grid, upsampled
    bilinearly): blobs shaped like the ranked deletions of the perturbation test (docs/PROTOCOL.md section 6),
    so that test measures which pixels a map ranks first, not the shock of seeing black pixels at all.
    """
    h, w = images.shape[-2:]
    return _delete_chosen(images, fraction, generator, lambda i: _smooth_order(h, w, generator))


def object_keeping_deletion(
    images: torch.Tensor, masks: torch.Tensor, fraction: float, generator: torch.Generator
) -> torch.Tensor:
    """Zero a share p ~ U(0, 0.9) of the pixels of a random `fraction` of the images, the labelled object's last.

    The deletions a faithful map makes in the negative perturbation test: the background goes first (in a
    random smooth order, as `random_deletion`), the object (its mask grown by 0-3 px) only once the background
    is gone. Without them the ViT fails on an object alone on black, so that test rewards a map that keeps
    the middle of the image (the centre map) as much as one that keeps the object.
    """
    h, w = images.shape[-2:]

    def order(i: int) -> torch.Tensor:
        grow = int(torch.randint(0, 4, (1,), generator=generator).item())
        kept = masks[i].float()[None, None]
        if grow:
            kept = F.max_pool2d(kept, 2 * grow + 1, stride=1, padding=grow)
        return _smooth_order(h, w, generator) - 2.0 * kept.flatten()

    return _delete_chosen(images, fraction, generator, order)


def run_stages(
    train: Callable[..., dict],
    stages: Sequence[dict],
    out_dir: Path,
    threads: int | None,
    start: int,
    earlier: list[dict],
) -> list[dict]:
    """Run stages[start:] of a recipe with `train(out_dir, threads=, init_from=, **stage)`, stage k from stage k-1
    (`start` > 0 goes on from the checkpoint in `out_dir`, stage start-1's output); the last stage saves to
    `out_dir`, the others to a temporary folder. Returns `earlier` (the metadata of stages 0..start-1) followed
    by each run stage's."""
    metas = list(earlier)
    with tempfile.TemporaryDirectory() as tmp:
        previous: Path | None = out_dir if start > 0 else None
        for k in range(start, len(stages)):
            target = out_dir if k == len(stages) - 1 else Path(tmp) / f"stage{k}"
            meta = train(target, threads=threads, init_from=previous, **stages[k])
            if k > 0:  # name the stage it went on from, not a (temporary) folder
                meta["init_from"] = f"stage {k - 1}"
            metas.append(meta)
            previous = target
    return metas


def earlier_stages(meta: dict, start: int, source: Path) -> list[dict]:
    """The metadata of stages 0..start-1 from a checkpoint's saved metadata (a recipe's "stages", or one stage's);
    `source` names the file for the error when there is none to go on from."""
    if start == 0:
        return []
    if not meta:
        raise FileNotFoundError(
            f"{source} is missing: --from-stage {start} goes on from the output of stage {start - 1}"
        )
    return list(meta.get("stages", [meta]))[:start]
