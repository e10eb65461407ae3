"""The embedded world's dataset: determinism, balance, independence of clutter and class."""

import numpy as np
import pytest
import torch

from harness.data.embedded import NUM_CLASSES, EmbeddedShapes, stack


def test_items_are_deterministic_and_well_formed():
    a, b = EmbeddedShapes("test")[7], EmbeddedShapes("test")[7]
    assert torch.equal(a.image, b.image) and torch.equal(a.mask, b.mask)
    assert a.image.shape == (3, 64, 64) and a.image.dtype == torch.float32
    assert a.image.min() >= 0.0 and a.image.max() <= 1.0
    assert a.mask.shape == (64, 64) and a.mask.dtype == torch.uint8 and set(a.mask.unique().tolist()) <= {0, 1}
    assert a.item_id == "embedded-test-000007"


def test_splits_differ_and_seed_matters():
    test, train = EmbeddedShapes("test")[0], EmbeddedShapes("train")[0]
    other_seed = EmbeddedShapes("test", seed=1)[0]
    assert not torch.equal(test.image, train.image)
    assert not torch.equal(test.image, other_seed.image)


def test_classes_balanced_and_masks_nonempty():
    images, labels, masks = stack(EmbeddedShapes("test", length=100))
    assert torch.bincount(labels, minlength=NUM_CLASSES).tolist() == [10] * NUM_CLASSES
    frac = masks.float().mean(dim=(1, 2))
    assert (frac > 0.01).all() and (frac < 0.6).all()


def test_background_statistics_do_not_reveal_the_class():
    """Mean background colour per class stays within noise of the overall mean (clutter is class-independent)."""
    images, labels, masks = stack(EmbeddedShapes("test", length=400))
    bg = (1 - masks.float()).unsqueeze(1)
    bg_mean = (images * bg).sum(dim=(2, 3)) / bg.sum(dim=(2, 3))
    overall = bg_mean.mean(0)
    per_class = torch.stack([bg_mean[labels == c].mean(0) for c in range(NUM_CLASSES)])
    assert (per_class - overall).abs().max() < 0.06


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown split"):
        EmbeddedShapes("validation")
    with pytest.raises(IndexError):
        EmbeddedShapes("test", length=5)[5]
    assert np.isclose(len(EmbeddedShapes("test", length=3)), 3)
