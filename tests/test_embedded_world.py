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


def test_no_centre_prior_and_the_labelled_shape_is_not_alone():
    """Labelled shapes lie anywhere (their mask centroids spread over the image, many far from its centre), and
    the image holds more than them: distractor shapes of other classes, drawn outside the mask."""
    images, _, masks = stack(EmbeddedShapes("test", length=200))
    m = masks.float()
    grid = torch.arange(64, dtype=torch.float32) + 0.5
    cy = (m.sum(2) * grid).sum(1) / m.sum((1, 2))
    cx = (m.sum(1) * grid).sum(1) / m.sum((1, 2))
    off = torch.hypot(cy - 32, cx - 32)
    assert cy.std() > 9 and cx.std() > 9 and (off > 16).float().mean() > 0.25
    single, _, single_masks = stack(EmbeddedShapes("test", length=200, world="single"))
    sm = single_masks.float()
    s_off = torch.hypot(
        (sm.sum(2) * grid).sum(1) / sm.sum((1, 2)) - 32, (sm.sum(1) * grid).sum(1) / sm.sum((1, 2)) - 32
    )
    assert off.mean() > s_off.mean()  # the curriculum world is the centred one


def test_distractors_are_smaller_shapes_outside_the_mask():
    from harness.data.embedded import DISTRACTOR_RATIO, SCALE, _clutter

    assert DISTRACTOR_RATIO[1] < 1 and SCALE[0] > 0
    # The same draw without its shapes: the clutter alone. Outside the mask the image differs from it where
    # distractors were drawn, in a region smaller than the labelled shape.
    item = EmbeddedShapes("test")[3]
    rng = np.random.default_rng([0, EmbeddedShapes("test")._split_key, 3])
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32) + 0.5
    clutter = _clutter(rng, 64, yy, xx)
    changed = (np.abs(item.image.numpy() - clutter).max(axis=0) > 1e-6) & (item.mask.numpy() == 0)
    assert 0 < changed.sum() < item.mask.sum()


def test_unknown_world_is_named():
    with pytest.raises(ValueError, match="unknown embedded world"):
        EmbeddedShapes("test", world="ring")
