"""The one item type every dataset yields."""

from __future__ import annotations

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
