"""ImageNet val loader on tiny JPEG/PNG files in the flat (devkit) and ImageFolder layouts; Re's subset."""

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from torch.utils.data import DataLoader, WeightedRandomSampler

from harness.data.imagenet_val import ENV_VAR, ImageNetVal, re_subset_indices

# 1000 leaf synsets whose ILSVRC2012_IDs are NOT in sorted-wnid order, plus two inner synsets
WNIDS = [f"n{(7919 * i) % 10007:08d}" for i in range(1, 1001)]
INNER = [("n99999998", 1001), ("n99999999", 1002)]
# the validation images of the test: (file number, ILSVRC2012_ID)
GROUND_TRUTH = [(1, 17), (2, 3), (3, 17), (4, 999), (5, 1), (6, 3)]


def standard_index(ilsvrc_id: int) -> int:
    return sorted(WNIDS).index(WNIDS[ilsvrc_id - 1])


def write_meta(path) -> None:
    fields = [
        "ILSVRC2012_ID",
        "WNID",
        "words",
        "gloss",
        "num_children",
        "children",
        "wordnet_height",
        "num_train_images",
    ]
    synsets = np.zeros((len(WNIDS) + len(INNER), 1), dtype=[(f, "O") for f in fields])
    for k, wnid in enumerate(WNIDS):
        synsets[k, 0] = (k + 1, wnid, f"class {k}", "", 0, np.zeros(0), 0, 1300)
    for k, (wnid, ident) in enumerate(INNER, len(WNIDS)):
        synsets[k, 0] = (ident, wnid, "inner", "", 2, np.array([1, 2]), 1, 0)
    scipy.io.savemat(path, {"synsets": synsets})


def write_image(path, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (9 + seed, 13, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


@pytest.fixture
def flat_root(tmp_path):
    root = tmp_path / "val"
    root.mkdir()
    for number, _ in GROUND_TRUTH:
        write_image(root / f"ILSVRC2012_val_{number:08d}.JPEG", number)
    data = tmp_path / "ILSVRC2012_devkit_t12" / "data"
    data.mkdir(parents=True)
    (data / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{i}\n" for _, i in GROUND_TRUTH))
    write_meta(data / "meta.mat")
    return root


@pytest.fixture
def folder_root(tmp_path):
    root = tmp_path / "imagefolder"
    for wnid in WNIDS:
        (root / wnid).mkdir(parents=True)
    for number, ilsvrc_id in GROUND_TRUTH:
        suffix = "png" if number % 2 else "JPEG"
        write_image(root / WNIDS[ilsvrc_id - 1] / f"ILSVRC2012_val_{number:08d}.{suffix}", number)
    return root


def expected_order() -> list[tuple[str, int]]:
    """torchvision's ImageNet order: class index, then file name."""
    rows = [(f"imagenet-val-ILSVRC2012_val_{n:08d}", standard_index(i)) for n, i in GROUND_TRUTH]
    return sorted(rows, key=lambda r: (r[1], r[0]))


def test_flat_layout_maps_devkit_ids_to_standard_indices(flat_root):
    ds = ImageNetVal(flat_root)
    assert ds.layout == "flat" and len(ds) == len(GROUND_TRUTH)
    assert [(it.item_id, it.label) for it in (ds[i] for i in range(len(ds)))] == expected_order()
    item = ds[0]
    assert item.image.shape == (3, 224, 224) and item.image.dtype == torch.float32
    assert item.image.min() >= 0 and item.image.max() <= 1
    assert item.mask.shape == (224, 224) and item.mask.dtype == torch.uint8 and not item.mask.any()
    path = flat_root / f"{item.item_id.removeprefix('imagenet-val-')}.JPEG"
    ref = np.asarray(Image.open(path).convert("RGB").resize((224, 224), Image.BILINEAR), dtype=np.float32) / 255
    assert torch.equal(item.image, torch.from_numpy(ref).permute(2, 0, 1))


def test_folder_layout_agrees_with_flat_layout(flat_root, folder_root):
    folder, flat = ImageNetVal(folder_root, size=None), ImageNetVal(flat_root, size=None)
    assert folder.layout == "folder"
    assert [(folder[i].item_id, folder[i].label) for i in range(len(folder))] == expected_order()
    jpeg = next(i for i in range(len(folder)) if folder.samples[i][0].endswith("JPEG"))
    assert torch.equal(folder[jpeg].image, flat[jpeg].image)  # the same JPEG bytes in both layouts
    png = next(i for i in range(len(folder)) if folder.samples[i][0].endswith("png"))
    number = int(folder[png].item_id[-8:])
    rng_pixels = np.random.default_rng(number).integers(0, 256, (9 + number, 13, 3), dtype=np.uint8)
    assert torch.equal(folder[png].image, torch.from_numpy(rng_pixels).permute(2, 0, 1).float() / 255)


def test_labels_file_alternative(tmp_path, flat_root):
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"ILSVRC2012_val_{n:08d}.JPEG {standard_index(i)}\n" for n, i in GROUND_TRUTH))
    ds = ImageNetVal(flat_root, labels_file=labels, size=8)
    assert [(it.item_id, it.label) for it in (ds[i] for i in range(len(ds)))] == expected_order()
    labels.write_text("ILSVRC2012_val_00000001.JPEG tench\n")
    with pytest.raises(ValueError, match="class index"):
        ImageNetVal(flat_root, labels_file=labels)


def test_re_subset_replays_res_sampler():
    n = 50_000
    with torch.random.fork_rng():
        torch.manual_seed(44)  # Re: seed_everything(44), then a DataLoader over the sampler
        sampler = WeightedRandomSampler([1.0 / n] * n, num_samples=int(n * 0.08), replacement=False)
        loader = DataLoader(range(n), batch_size=1000, sampler=sampler)
        reference = torch.cat(list(loader)).tolist()
    ours = re_subset_indices(n)
    assert len(ours) == 4000 and len(set(ours)) == 4000 and ours == reference


def test_re_subset_of_a_dataset(flat_root):
    full = ImageNetVal(flat_root, size=8)
    sub = ImageNetVal(flat_root, size=8, subset="re", subset_fraction=0.5)
    picked = re_subset_indices(len(full), 0.5, 44)
    assert len(sub) == 3 and [sub[i].item_id for i in range(3)] == [full[j].item_id for j in picked]
    with pytest.raises(ValueError, match="selects none"):
        ImageNetVal(flat_root, subset="re")  # 8% of 6 images


def test_missing_data_messages(tmp_path, flat_root):
    missing = tmp_path / "no_such_folder"
    with pytest.raises(FileNotFoundError) as err:
        ImageNetVal(missing)
    text = str(err.value)
    assert str(missing) in text and "image-net.org" in text and ENV_VAR in text and "devkit" in text
    (flat_root.parent / "ILSVRC2012_devkit_t12" / "data" / "meta.mat").unlink()
    with pytest.raises(FileNotFoundError, match="meta.mat.*image-net.org"):
        ImageNetVal(flat_root)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="neither"):
        ImageNetVal(empty)


def test_partial_class_folders_are_rejected(tmp_path):
    root = tmp_path / "partial"
    (root / WNIDS[0]).mkdir(parents=True)
    write_image(root / WNIDS[0] / "a.png", 0)
    with pytest.raises(ValueError, match="1000 wnid folders"):
        ImageNetVal(root)
    ds = ImageNetVal(root, expected_classes=None, size=4)
    assert ds[0].label == 0 and ds[0].image.shape == (3, 4, 4)
