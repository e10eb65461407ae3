"""Datasets: every dataset yields :class:`harness.data.item.Item` (image in [0,1], label, mask, id)."""

from harness.data.item import Item

__all__ = ["Item"]
