"""get_dataset: names, roots from arguments or environment variables, and clear errors."""

import numpy as np
import pytest
from test_data_imagenet_seg import sample_pair, write_gtsegs
from test_data_imagenet_val import GROUND_TRUTH, WNIDS, write_image

from harness.data.embedded import EmbeddedShapes
from harness.data.imagenet_seg import ENV_VAR as SEG_ENV
from harness.data.imagenet_seg import SOURCE_URL, ImageNetSegmentation
from harness.data.imagenet_val import ENV_VAR as VAL_ENV
from harness.data.imagenet_val import ImageNetVal
from harness.data.registry import get_dataset, names


def test_names():
    assert names() == ["embedded", "imagenet-seg", "imagenet-val", "imagenet-val-re8"]


def test_embedded_is_the_test_split():
    ds = get_dataset("embedded", length=3)
    assert isinstance(ds, EmbeddedShapes) and len(ds) == 3 and ds[0].item_id.startswith("embedded-test-")
    with pytest.raises(ValueError, match="no root"):
        get_dataset("embedded", root="/data")


def test_imagenet_seg_from_argument_or_environment(tmp_path, monkeypatch):
    path = tmp_path / "gtsegs_ijcv.mat"
    write_gtsegs(path, *zip(sample_pair(10, 12, 0), strict=True))
    monkeypatch.delenv(SEG_ENV, raising=False)
    with pytest.raises(FileNotFoundError) as err:
        get_dataset("imagenet-seg")
    assert SEG_ENV in str(err.value) and SOURCE_URL in str(err.value)
    assert len(get_dataset("imagenet-seg", path)) == 1
    monkeypatch.setenv(SEG_ENV, str(path))
    ds = get_dataset("imagenet-seg", size=32)
    assert isinstance(ds, ImageNetSegmentation) and ds[0].image.shape == (3, 32, 32)
    monkeypatch.setenv(SEG_ENV, str(tmp_path / "elsewhere.mat"))
    with pytest.raises(FileNotFoundError, match="elsewhere.mat"):
        get_dataset("imagenet-seg")


def test_imagenet_val_from_environment(tmp_path, monkeypatch):
    root = tmp_path / "val"
    (root / WNIDS[0]).mkdir(parents=True)
    write_image(root / WNIDS[0] / f"ILSVRC2012_val_{GROUND_TRUTH[0][0]:08d}.png", 0)
    monkeypatch.delenv(VAL_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=VAL_ENV):
        get_dataset("imagenet-val")
    monkeypatch.setenv(VAL_ENV, str(root))
    ds = get_dataset("imagenet-val", expected_classes=None, size=16)
    assert isinstance(ds, ImageNetVal) and ds[0].image.shape == (3, 16, 16)
    assert np.array_equal(ds[0].mask.numpy(), np.zeros((16, 16), np.uint8))


def test_unknown_name():
    with pytest.raises(KeyError, match="imagenet-val"):
        get_dataset("cifar")


def test_environment_variable_names_agree():
    from harness.data import registry

    assert (registry.SEG_ENV_VAR, registry.VAL_ENV_VAR) == (SEG_ENV, VAL_ENV)
