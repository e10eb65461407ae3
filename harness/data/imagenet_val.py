"""ImageNet (ILSVRC2012) validation images for the perturbation tests, and Re's 8% subset.

Two layouts are read (``layout="auto"`` picks the one it finds in `root`, then in `root/val`):

- "flat": the official release, ``ILSVRC2012_val_00000001.JPEG`` ... in one folder, labelled either by
  the devkit (``ILSVRC2012_validation_ground_truth.txt``: line i holds the ILSVRC2012_ID of image i;
  ``meta.mat``: the synsets, read with scipy.io.loadmat, mapping each ILSVRC2012_ID of the 1000 leaf
  synsets to its wnid) or by a simple `labels_file` whose lines are ``<image file name> <index 0-999>``.
  The devkit files are looked for in `devkit` if given, else in `root`, `root/data`,
  `root/ILSVRC2012_devkit_t12/data` and `root/../ILSVRC2012_devkit_t12/data`.
- "folder": one subfolder per wnid (torchvision ImageFolder / the layout torchvision's ImageNet
  builds); empty class folders are allowed.

The class index is the standard one: the rank of the wnid among the 1000 sorted leaf wnids (the
order of torchvision's ImageNet and of timm's ImageNet heads). The item order is torchvision's
(class index, then file name) in both layouts, so indices, and hence Re's subset, agree.

Preprocessing as Re (and Chefer): PIL image converted to RGB, Resize((224, 224)) (squash, no crop;
bilinear, PIL's antialiased filter) on the PIL image, ToTensor. Masks are all zeros.

Re's subset (``subset="re"``, or its name ``"re-seed44-8pct"``; dataset ``imagenet-val-re8``): the
8% subset, seed 44, in Re's draw order over the items in the order above, as
`harness.data.re_subset` replays Re's code (see there for the sources and the torch-kernel caveat).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms import InterpolationMode

from harness.data.item import CorruptItemError, Item
from harness.data.re_subset import RE_FRACTION, RE_SEED, SUBSET_NAME, re_subset_indices

ENV_VAR = "FVIT_IMAGENET_VAL"
NUM_CLASSES = 1000
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
META = "meta.mat"
_FLAT_NAME = re.compile(r"^ILSVRC2012_val_(\d{8})\.[A-Za-z]+$")
_WNID = re.compile(r"^n\d{8}$")


def missing_message(root: Path | None) -> str:
    where = f"ImageNet validation folder not found: {root}." if root else "No ImageNet validation folder given."
    return (
        f"{where} Obtain the ILSVRC2012 validation images (ILSVRC2012_img_val.tar) and the devkit "
        f"(ILSVRC2012_devkit_t12.tar.gz) from https://image-net.org; extract the images into one folder "
        f"with the devkit beside them (ILSVRC2012_devkit_t12/data/{GROUND_TRUTH} and meta.mat), or arrange "
        f"them in wnid subfolders (ImageFolder). Pass the folder or set the environment variable {ENV_VAR}."
    )


def _find(name: str, folders: list[Path]) -> Path:
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    searched = ", ".join(str(f / name) for f in folders)
    raise FileNotFoundError(
        f"ImageNet devkit file {name} not found (looked for {searched}). It is in "
        f"ILSVRC2012_devkit_t12.tar.gz from https://image-net.org (data/{name}); pass its folder: devkit=..."
    )


def wnid_index_from_meta(meta_path: Path, expected_classes: int | None = NUM_CLASSES) -> dict[int, int]:
    """ILSVRC2012_ID -> standard class index (rank of the wnid among the sorted leaf wnids)."""
    try:
        from scipy.io import loadmat
    except ImportError as err:  # scipy comes with scikit-learn, a dependency
        raise ImportError("reading the devkit's meta.mat needs scipy; install scipy or pass labels_file=...") from err
    synsets = loadmat(meta_path, squeeze_me=True)["synsets"]
    ids = np.atleast_1d(synsets["ILSVRC2012_ID"]).astype(int)
    wnids = [str(w) for w in np.atleast_1d(synsets["WNID"])]
    leaves = np.atleast_1d(synsets["num_children"]).astype(int) == 0
    leaf = {int(i): w for i, w, is_leaf in zip(ids, wnids, leaves, strict=True) if is_leaf}
    if expected_classes is not None and len(leaf) != expected_classes:
        raise ValueError(f"{meta_path}: {len(leaf)} leaf synsets, expected {expected_classes}")
    rank = {w: k for k, w in enumerate(sorted(leaf.values()))}
    return {i: rank[w] for i, w in leaf.items()}


def _flat_samples(
    root: Path, devkit: Path | None, labels_file: Path | None, expected_classes: int | None
) -> list[tuple[str, int]]:
    files = sorted(p for p in root.iterdir() if _FLAT_NAME.match(p.name) and p.suffix.lower() in IMG_EXTENSIONS)
    if not files:
        raise FileNotFoundError(f"no ILSVRC2012_val_########.JPEG images in {root}. " + missing_message(None))
    if labels_file is not None:
        labels = _read_labels_file(Path(labels_file), expected_classes)
        missing = [p.name for p in files if p.name not in labels]
        if missing:
            raise ValueError(f"{labels_file} has no label for {len(missing)} image(s), e.g. {missing[0]}")
        samples = [(str(p), labels[p.name]) for p in files]
    else:
        folders = (
            [Path(devkit)]
            if devkit
            else [
                root,
                root / "data",
                root / "ILSVRC2012_devkit_t12" / "data",
                root.parent / "ILSVRC2012_devkit_t12" / "data",
            ]
        )
        gt_path, meta_path = _find(GROUND_TRUTH, folders), _find(META, folders)
        id_to_index = wnid_index_from_meta(meta_path, expected_classes)
        ground_truth = [int(line) for line in gt_path.read_text().split()]
        samples = []
        for p in files:
            number = int(_FLAT_NAME.match(p.name).group(1))
            if number > len(ground_truth):
                raise ValueError(f"{gt_path} has {len(ground_truth)} lines; no label for {p.name}")
            ilsvrc_id = ground_truth[number - 1]
            if ilsvrc_id not in id_to_index:
                raise ValueError(f"{p.name}: ILSVRC2012_ID {ilsvrc_id} is not a leaf synset of {meta_path}")
            samples.append((str(p), id_to_index[ilsvrc_id]))
    return sorted(samples, key=lambda s: (s[1], os.path.basename(s[0])))


def _read_labels_file(path: Path, expected_classes: int | None) -> dict[str, int]:
    if not path.is_file():
        raise FileNotFoundError(f"labels file not found: {path}")
    labels = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.replace(",", " ").split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ValueError(f"{path}:{n}: expected '<image file name> <class index>', got {line!r}")
        index = int(parts[1])
        if index < 0 or (expected_classes is not None and index >= expected_classes):
            raise ValueError(f"{path}:{n}: class index {index} outside [0, {expected_classes})")
        labels[parts[0]] = index
    return labels


def _folder_samples(root: Path, expected_classes: int | None) -> list[tuple[str, int]]:
    folder = ImageFolder(str(root), allow_empty=True)
    if expected_classes is not None and len(folder.classes) != expected_classes:
        raise ValueError(
            f"{root}: {len(folder.classes)} class folders; the standard ImageNet index needs all "
            f"{expected_classes} wnid folders (empty ones are allowed), or pass expected_classes=None"
        )
    if not folder.samples:
        raise FileNotFoundError(f"no images in the class folders of {root}. " + missing_message(None))
    return list(folder.samples)


def _detect(root: Path) -> tuple[str, Path]:
    for candidate in (root, root / "val"):
        if not candidate.is_dir():
            continue
        names = [p.name for p in candidate.iterdir()]
        if any(_FLAT_NAME.match(n) for n in names):
            return "flat", candidate
        if any(_WNID.match(n) and (candidate / n).is_dir() for n in names):
            return "folder", candidate
    raise FileNotFoundError(
        f"neither ILSVRC2012_val_*.JPEG files nor wnid subfolders in {root}. " + missing_message(None)
    )


class ImageNetVal(Dataset):
    """`Item`s of ImageNet val: image (3, S, S) in [0, 1], standard label 0-999, all-zero mask.

    root: the folder (see the module docstring for layouts); size: output side (224), None keeps it.
    subset: None (all images) or "re" / "re-seed44-8pct" (Re's 8% subset, seed 44; `subset_fraction`,
    `subset_seed`, `subset_kernel`: torch's exponential kernel to replay, see `harness.data.re_subset`).
    expected_classes: the class count the labels must index (1000); None skips the check.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        size: int | None = 224,
        layout: str = "auto",
        devkit: str | os.PathLike | None = None,
        labels_file: str | os.PathLike | None = None,
        subset: str | None = None,
        subset_fraction: float = RE_FRACTION,
        subset_seed: int = RE_SEED,
        subset_kernel: str = "torch",
        expected_classes: int | None = NUM_CLASSES,
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(missing_message(self.root))
        if size is not None and size < 1:
            raise ValueError(f"size must be positive or None, got {size}")
        if layout == "auto":
            layout, folder = _detect(self.root)
        elif layout in ("flat", "folder"):
            folder = self.root
        else:
            raise ValueError(f"layout must be 'auto', 'flat' or 'folder', got {layout!r}")
        self.layout, self.size = layout, size
        if layout == "flat":
            self.samples = _flat_samples(folder, Path(devkit) if devkit else None, labels_file, expected_classes)
        else:
            self.samples = _folder_samples(folder, expected_classes)
        stems = [Path(p).stem for p, _ in self.samples]
        if len(set(stems)) != len(stems):
            raise ValueError(f"{folder}: image file names are not unique; they are the item ids")
        if subset is None:
            self.indices = list(range(len(self.samples)))
        elif subset in ("re", SUBSET_NAME):
            self.indices = re_subset_indices(len(self.samples), subset_fraction, subset_seed, subset_kernel)
        else:
            raise ValueError(f"subset must be None, 're' or {SUBSET_NAME!r}, got {subset!r}")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Item:
        if not 0 <= index < len(self.indices):
            raise IndexError(f"index {index} out of range for {len(self.indices)} items")
        path, label = self.samples[self.indices[index]]
        try:
            with Image.open(path) as img:
                pil = img.convert("RGB")
        except (OSError, SyntaxError, ValueError) as err:  # PIL's errors for truncated or invalid files
            raise CorruptItemError(path, str(err)) from None
        if self.size is not None:
            pil = TF.resize(pil, [self.size, self.size], InterpolationMode.BILINEAR)
        image = TF.to_tensor(pil)
        mask = torch.zeros(image.shape[1:], dtype=torch.uint8)
        return Item(image, int(label), mask, f"imagenet-val-{Path(path).stem}")
