"""The one item type every dataset yields."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch


class Item(NamedTuple):
    """One evaluation item.

    image: float32 (3, H, W) in [0, 1] pixel space.
    label: int class index.
    mask: uint8 (H, W), 1 = foreground object, 0 = background (all zeros when a dataset has no masks).
    item_id: stable string id, used as the key of persisted results.
    """

    image: torch.Tensor
    label: int
    mask: torch.Tensor
    item_id: str


class CorruptItemError(ValueError):
    """An item whose file cannot be decoded; names the file."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        super().__init__(
            f"corrupt or unreadable image {self.path}: {reason} (replace the file, or set "
            "corrupt_images: skip to leave it out and record it in the run's metadata)"
        )
