"""ImageNet-Segmentation loader on small files written in gtsegs_ijcv.mat's MATLAB v7.3 layout."""

import pickle

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from harness.data.imagenet_seg import SOURCE_URL, ImageNetSegmentation


def write_gtsegs(path, images: list[np.ndarray], masks: list[np.ndarray]) -> None:
    """MATLAB v7.3 layout: value/img and value/gt are (N, 1) references; arrays stored transposed
    (column-major), images as (3, W, H), masks as (W, H) inside a (1, 1) cell of references."""
    with h5py.File(path, "w") as f:
        refs = f.create_group("#refs#")
        img_refs, gt_refs = [], []
        for i, (image, mask) in enumerate(zip(images, masks, strict=True)):
            img_refs.append(refs.create_dataset(f"img{i}", data=image.transpose(2, 1, 0)).ref)
            mask_ds = refs.create_dataset(f"mask{i}", data=mask.T)
            cell = refs.create_dataset(f"cell{i}", data=np.array([[mask_ds.ref]], dtype=h5py.ref_dtype))
            gt_refs.append(cell.ref)
        value = f.create_group("value")
        value.create_dataset("img", data=np.array(img_refs, dtype=h5py.ref_dtype).reshape(-1, 1))
        value.create_dataset("gt", data=np.array(gt_refs, dtype=h5py.ref_dtype).reshape(-1, 1))


def sample_pair(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A non-square image whose red channel grows down the rows and green along the columns, and a
    mask whose foreground is the top-left block: any transposition or flip is visible."""
    rng = np.random.default_rng(seed)
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 0] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
    image[..., 1] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    image[..., 2] = rng.integers(0, 256, (h, w))
    mask = np.zeros((h, w), np.uint8)
    mask[: h // 3, : w // 2] = 1
    return image, mask


@pytest.fixture
def seg_file(tmp_path):
    pairs = [sample_pair(30, 50, 0), sample_pair(40, 24, 1)]
    path = tmp_path / "gtsegs_ijcv.mat"
    write_gtsegs(path, *zip(*pairs, strict=True))
    return path, pairs


def test_native_resolution_round_trip_is_oriented(seg_file):
    path, pairs = seg_file
    ds = ImageNetSegmentation(path, size=None)
    assert len(ds) == 2
    for i, (image, mask) in enumerate(pairs):
        item = ds[i]
        assert item.image.dtype == torch.float32 and item.mask.dtype == torch.uint8
        assert torch.equal(item.image, torch.from_numpy(image).permute(2, 0, 1).float() / 255)
        assert torch.equal(item.mask, torch.from_numpy(mask))
        assert item.label == -1 and item.item_id == f"imagenet-seg-{i:05d}"


def test_resized_like_chefers_pil_pipeline(seg_file):
    path, pairs = seg_file
    ds = ImageNetSegmentation(path)
    for i, (image, mask) in enumerate(pairs):
        item = ds[i]
        assert item.image.shape == (3, 224, 224) and item.mask.shape == (224, 224)
        ref_img = np.asarray(Image.fromarray(image).resize((224, 224), Image.BILINEAR), dtype=np.float32) / 255
        ref_mask = np.array(Image.fromarray(mask).resize((224, 224), Image.NEAREST))
        assert torch.equal(item.image, torch.from_numpy(ref_img).permute(2, 0, 1))
        assert torch.equal(item.mask, torch.from_numpy(ref_mask))
        assert item.mask[0, 0] == 1 and item.mask[-1, -1] == 0 and set(item.mask.unique().tolist()) == {0, 1}
        assert item.image[0, 0, :].mean() < item.image[0, -1, :].mean()  # red grows downwards


def test_pickles_after_opening(seg_file):
    ds = ImageNetSegmentation(seg_file[0], size=16)
    ds[0]
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[1].image, ds[1].image)
    ds.close()


def test_missing_file_names_path_and_source(tmp_path):
    missing = tmp_path / "nowhere" / "gtsegs_ijcv.mat"
    with pytest.raises(FileNotFoundError) as err:
        ImageNetSegmentation(missing)
    assert str(missing) in str(err.value) and SOURCE_URL in str(err.value)


def test_malformed_files_are_named(tmp_path):
    image, mask = sample_pair(8, 8, 0)
    path = tmp_path / "no_gt.mat"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("#refs#/a", data=image.transpose(2, 1, 0))
        f.create_dataset("value/img", data=np.array([[ds.ref]], dtype=h5py.ref_dtype))
    with pytest.raises(ValueError, match="'value/gt' is missing"):
        ImageNetSegmentation(path)

    path = tmp_path / "wide.mat"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("#refs#/a", data=image.transpose(2, 1, 0))
        refs = np.array([[ds.ref, ds.ref]], dtype=h5py.ref_dtype)
        f.create_dataset("value/img", data=refs)
        f.create_dataset("value/gt", data=refs)
    with pytest.raises(ValueError, match=r"expected \(N, 1\)"):
        ImageNetSegmentation(path)

    path = tmp_path / "plain.mat"
    with h5py.File(path, "w") as f:
        f.create_dataset("value/img", data=np.zeros((1, 1)))
        f.create_dataset("value/gt", data=np.zeros((1, 1)))
    with pytest.raises(ValueError, match="object references"):
        ImageNetSegmentation(path)

    path = tmp_path / "bad_image.mat"
    write_gtsegs(path, [image[..., :2]], [mask])  # two channels
    with pytest.raises(ValueError, match=r"shape \(2, 8, 8\)"):
        ImageNetSegmentation(path)[0]

    path = tmp_path / "bad_mask.mat"
    write_gtsegs(path, [image], [mask * 255])
    with pytest.raises(ValueError, match="not binary"):
        ImageNetSegmentation(path)[0]

    path = tmp_path / "mismatch.mat"
    write_gtsegs(path, [image], [mask[:4]])
    with pytest.raises(ValueError, match="does not match"):
        ImageNetSegmentation(path)[0]
