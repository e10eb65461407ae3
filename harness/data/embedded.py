"""The embedded world: procedurally drawn shapes on smooth clutter, with ground-truth masks.

The class is decided by the foreground shape only; position, size, rotation, colour and the
background clutter are drawn independently of the class. Every item is a pure function of
(seed, split, index), so the dataset is identical on every machine and needs no files.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch
from torch.utils.data import Dataset

from harness.data.item import Item

CLASS_NAMES: tuple[str, ...] = (
    "disk",
    "square",
    "triangle",
    "ring",
    "plus",
    "frame",
    "star",
    "crescent",
    "ellipse",
    "ell",
)
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SIZE = 64
SPLIT_SIZES = {"train": 20_000, "test": 1_000}


def _shape_mask(cls: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of shape `cls` in shape-local coordinates (unit scale, centred)."""
    r = np.hypot(u, v)
    if cls == 0:  # disk
        return r < 0.85
    if cls == 1:  # square
        return np.maximum(np.abs(u), np.abs(v)) < 0.75
    if cls == 2:  # equilateral triangle, circumradius 1
        return (v > -0.5) & (np.sqrt(3) * u + v < 1.0) & (-np.sqrt(3) * u + v < 1.0)
    if cls == 3:  # ring
        return (r < 0.95) & (r > 0.55)
    if cls == 4:  # plus
        return ((np.abs(u) < 0.3) & (np.abs(v) < 0.95)) | ((np.abs(v) < 0.3) & (np.abs(u) < 0.95))
    if cls == 5:  # hollow square frame
        m = np.maximum(np.abs(u), np.abs(v))
        return (m < 0.85) & (m > 0.5)
    if cls == 6:  # five-pointed star
        theta = np.arctan2(v, u)
        return r < 0.5 + 0.45 * np.cos(5 * theta) ** 2 * (np.cos(5 * theta) > 0)
    if cls == 7:  # crescent
        return (r < 0.9) & (np.hypot(u - 0.45, v) > 0.7)
    if cls == 8:  # ellipse, aspect 2:1
        return (u / 0.95) ** 2 + (v / 0.45) ** 2 < 1.0
    if cls == 9:  # L shape
        return ((np.abs(u + 0.55) < 0.3) & (np.abs(v) < 0.9)) | ((np.abs(v - 0.6) < 0.3) & (np.abs(u) < 0.85))
    raise ValueError(f"class index {cls} out of range [0, {NUM_CLASSES})")


def _smooth_field(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """A smooth RGB field in [0, 1]: a coarse random grid bilinearly upsampled to (3, size, size)."""
    grid = torch.from_numpy(rng.uniform(0.0, 1.0, size=(1, 3, cells, cells)).astype(np.float32))
    up = torch.nn.functional.interpolate(grid, size=(size, size), mode="bicubic", align_corners=True)
    return up[0].clamp(0, 1).numpy()


def render(rng: np.random.Generator, label: int, size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Draw one image (3, size, size) float32 in [0,1] and its mask (size, size) uint8 for `label`."""
    # Background: smooth clutter (low-contrast field) plus a few soft distractor blobs.
    base = 0.2 + 0.6 * _smooth_field(rng, size, cells=int(rng.integers(3, 7)))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    for _ in range(int(rng.integers(0, 4))):
        cy, cx = rng.uniform(0, size, size=2)
        s = rng.uniform(2.0, 5.0)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s**2))
        colour = rng.uniform(0, 1, size=(3, 1, 1))
        base = base * (1 - 0.7 * blob) + 0.7 * blob * colour
    # Foreground: the class shape, random scale, rotation, position and colour.
    scale = rng.uniform(0.24, 0.36) * size
    angle = rng.uniform(0, 2 * np.pi)
    margin = scale * 1.05
    cy, cx = rng.uniform(margin, size - margin, size=2)
    dy, dx = (yy - cy) / scale, (xx - cx) / scale
    c, s_ = np.cos(angle), np.sin(angle)
    u, v = c * dx + s_ * dy, -s_ * dx + c * dy
    mask = _shape_mask(label, u, v)
    colour = rng.uniform(0, 1, size=3)
    local_bg = base[:, mask].mean(axis=1) if mask.any() else base.mean(axis=(1, 2))
    if np.abs(colour - local_bg).mean() < 0.3:
        colour = np.where(local_bg > 0.5, colour * 0.3, 0.7 + 0.3 * colour)
    texture = 0.06 * (_smooth_field(rng, size, cells=8) - 0.5)
    fg = np.clip(colour[:, None, None] + texture, 0, 1)
    image = np.where(mask[None], fg, base).astype(np.float32)
    return np.clip(image, 0, 1), mask.astype(np.uint8)


class EmbeddedShapes(Dataset):
    """The embedded world's dataset: `Item`s of 64x64 RGB shape images with masks.

    split: "train" or "test" (disjoint seeds); length defaults to SPLIT_SIZES[split].
    Labels cycle through the classes so every split is class balanced.
    """

    def __init__(self, split: str = "test", length: int | None = None, seed: int = 0, size: int = IMAGE_SIZE):
        if split not in SPLIT_SIZES:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_SIZES)}")
        if length is not None and length <= 0:
            raise ValueError(f"length must be positive, got {length}")
        self.split, self.seed, self.size = split, seed, size
        self.length = SPLIT_SIZES[split] if length is None else length
        self._split_key = zlib.crc32(split.encode())

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Item:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        rng = np.random.default_rng([self.seed, self._split_key, index])
        label = index % NUM_CLASSES
        image, mask = render(rng, label, self.size)
        return Item(torch.from_numpy(image), label, torch.from_numpy(mask), f"embedded-{self.split}-{index:06d}")


def stack(
    dataset: Dataset, indices: range | list[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Materialise (images, labels, masks) tensors for `indices` of a dataset (all by default)."""
    idx = range(len(dataset)) if indices is None else indices
    items = [dataset[i] for i in idx]
    images = torch.stack([it.image for it in items])
    labels = torch.tensor([it.label for it in items])
    masks = torch.stack([it.mask for it in items])
    return images, labels, masks
