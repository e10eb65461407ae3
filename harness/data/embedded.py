"""The embedded world: procedurally drawn shapes on textured clutter, with distractors and ground-truth masks.

Each image holds its labelled shape, the largest object, at a random position (it may be cut by the border)
and scale, and one or two smaller distractor shapes of other classes, on clutter of smooth colour, oriented
gratings, fine noise, blobs and strokes; the mask covers the labelled shape only. So there is no centre prior,
and a class-specific map must find the right object. The class is decided by the labelled shape only;
position, size, rotation, colour, the distractors and the clutter are drawn independently of it. Every item
is a pure function of (seed, split, index), so the dataset is identical on every machine and needs no files.
`render_single` is the training recipes' curriculum (one centred shape on smooth clutter).
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
# The labelled object's scale (shape-unit radius, fraction of the image side) and its distractors' scale
# relative to it: the labelled object is always the largest.
SCALE = (0.2, 0.34)
DISTRACTOR_RATIO = (0.45, 0.65)


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


def _smooth_field(rng: np.random.Generator, size: int, cells: int, channels: int = 3) -> np.ndarray:
    """A smooth field in [0, 1]: a coarse random grid bicubically upsampled to (channels, size, size)."""
    grid = torch.from_numpy(rng.uniform(0.0, 1.0, size=(1, channels, cells, cells)).astype(np.float32))
    up = torch.nn.functional.interpolate(grid, size=(size, size), mode="bicubic", align_corners=True)
    return up[0].clamp(0, 1).numpy()


def _clutter(rng: np.random.Generator, size: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Textured clutter (3, size, size) in [0, 1]: a smooth colour field, oriented gratings, fine
    mid-frequency noise, and a few soft blobs and strokes of random colour. Independent of the class."""
    base = 0.2 + 0.6 * _smooth_field(rng, size, cells=int(rng.integers(3, 7)))
    for _ in range(int(rng.integers(1, 3))):  # oriented gratings, 3-8 px period
        theta, period, phase = rng.uniform(0, np.pi), rng.uniform(3.0, 8.0), rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * (np.cos(theta) * xx + np.sin(theta) * yy) / period + phase)
        weight = _smooth_field(rng, size, cells=3, channels=1)  # the grating fades in and out
        base = base + rng.uniform(0.04, 0.10) * rng.uniform(-1, 1, size=(3, 1, 1)) * wave * weight
    base = base + 0.12 * (_smooth_field(rng, size, cells=16) - 0.5)
    for _ in range(int(rng.integers(2, 6))):  # soft blobs
        cy, cx = rng.uniform(0, size, size=2)
        s = rng.uniform(2.0, 6.0)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s**2))
        base = base * (1 - 0.6 * blob) + 0.6 * blob * rng.uniform(0, 1, size=(3, 1, 1))
    for _ in range(int(rng.integers(1, 4))):  # thin strokes
        cy, cx = rng.uniform(0, size, size=2)
        theta, half, width = rng.uniform(0, np.pi), rng.uniform(6, 20), rng.uniform(0.6, 1.5)
        along = np.cos(theta) * (xx - cx) + np.sin(theta) * (yy - cy)
        across = -np.sin(theta) * (xx - cx) + np.cos(theta) * (yy - cy)
        stroke = (np.abs(along) < half) & (np.abs(across) < width)
        base = np.where(stroke[None], 0.5 * base + 0.5 * rng.uniform(0, 1, size=(3, 1, 1)), base)
    return np.clip(base, 0, 1)


def _place(rng, size, radius, taken, yy, xx):
    """A centre for an object of `radius` px: anywhere (it may be cut by up to 40% of its radius at the
    border), away from the objects in `taken` [(cy, cx, r)]. The last draw is kept if none is free."""
    lo, hi = 0.6 * radius, size - 0.6 * radius
    for _ in range(50):
        cy, cx = rng.uniform(lo, hi, size=2)
        if all(np.hypot(cy - ty, cx - tx) > 0.95 * (radius + tr) for ty, tx, tr in taken):
            break
    return cy, cx


def _object(rng, label, scale, cy, cx, yy, xx, background, angle: float | None = None):
    """The mask of shape `label` at (cy, cx), `scale` px, rotated by `angle` (None: drawn); and its textured
    colour, kept apart from the background it covers."""
    angle = rng.uniform(0, 2 * np.pi) if angle is None else angle
    dy, dx = (yy - cy) / scale, (xx - cx) / scale
    c, s_ = np.cos(angle), np.sin(angle)
    mask = _shape_mask(label, c * dx + s_ * dy, -s_ * dx + c * dy)
    colour = rng.uniform(0, 1, size=3)
    local = background[:, mask].mean(axis=1) if mask.any() else background.mean(axis=(1, 2))
    if np.abs(colour - local).mean() < 0.3:
        colour = np.where(local > 0.5, colour * 0.3, 0.7 + 0.3 * colour)
    texture = 0.06 * (_smooth_field(rng, yy.shape[0], cells=8) - 0.5)
    return mask, np.clip(colour[:, None, None] + texture, 0, 1)


def render(rng: np.random.Generator, label: int, size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Draw one image (3, size, size) float32 in [0,1] and the mask (size, size) uint8 of its `label` object.

    The labelled object is the largest: its scale is U(SCALE) x size, its 1-2 distractors of other classes
    are DISTRACTOR_RATIO times smaller and drawn first, so the labelled object is never covered.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    image = _clutter(rng, size, yy, xx)
    scale = rng.uniform(*SCALE) * size
    cy, cx = _place(rng, size, scale, [], yy, xx)
    taken = [(cy, cx, scale)]
    others = rng.choice([c for c in range(NUM_CLASSES) if c != label], size=int(rng.integers(1, 3)), replace=False)
    for other in others:
        d_scale = scale * rng.uniform(*DISTRACTOR_RATIO)
        dy, dx = _place(rng, size, d_scale, taken, yy, xx)
        taken.append((dy, dx, d_scale))
        d_mask, d_fg = _object(rng, int(other), d_scale, dy, dx, yy, xx, image)
        image = np.where(d_mask[None], d_fg, image)
    mask, fg = _object(rng, label, scale, cy, cx, yy, xx, image)
    image = np.where(mask[None], fg, image).astype(np.float32)
    return np.clip(image, 0, 1), mask.astype(np.uint8)


def render_single(rng: np.random.Generator, label: int, size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The curriculum world (the embedded world of fvit-bench before the clutter): one shape, no distractor,
    kept away from the border, on smooth clutter. The first stages of both training recipes learn on it."""
    base = 0.2 + 0.6 * _smooth_field(rng, size, cells=int(rng.integers(3, 7)))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    for _ in range(int(rng.integers(0, 4))):
        cy, cx = rng.uniform(0, size, size=2)
        s = rng.uniform(2.0, 5.0)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s**2))
        colour = rng.uniform(0, 1, size=(3, 1, 1))
        base = base * (1 - 0.7 * blob) + 0.7 * blob * colour
    scale = rng.uniform(0.24, 0.36) * size
    angle = rng.uniform(0, 2 * np.pi)
    margin = scale * 1.05
    cy, cx = rng.uniform(margin, size - margin, size=2)
    mask, fg = _object(rng, label, scale, cy, cx, yy, xx, base, angle)
    image = np.where(mask[None], fg, base).astype(np.float32)
    return np.clip(image, 0, 1), mask.astype(np.uint8)


RENDERERS = {"cluttered": render, "single": render_single}


class EmbeddedShapes(Dataset):
    """The embedded world's dataset: `Item`s of 64x64 RGB shape images with masks.

    split: "train" or "test" (disjoint seeds); length defaults to SPLIT_SIZES[split].
    Labels cycle through the classes so every split is class balanced. world: "cluttered" (the embedded
    world) or "single" (the training recipes' curriculum: `render_single`).
    """

    def __init__(
        self,
        split: str = "test",
        length: int | None = None,
        seed: int = 0,
        size: int = IMAGE_SIZE,
        world: str = "cluttered",
    ):
        if split not in SPLIT_SIZES:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_SIZES)}")
        if world not in RENDERERS:
            raise ValueError(f"unknown embedded world {world!r}; expected one of {sorted(RENDERERS)}")
        self.world = world
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
        image, mask = RENDERERS[self.world](rng, label, self.size)
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
