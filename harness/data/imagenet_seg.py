"""ImageNet-Segmentation (Guillaumin et al.; Chefer's segmentation benchmark): `gtsegs_ijcv.mat`.

The file is MATLAB v7.3, i.e. HDF5, read with h5py. Its layout (as Chefer's loader reads it):
- ``value/img``: (N, 1) object references; each points to a uint8 array stored transposed by MATLAB's
  column-major order as (3, W, H); transposing axes (2, 1, 0) gives the image (H, W, 3).
- ``value/gt``: (N, 1) object references; each points to a (1, 1) MATLAB cell, i.e. a dataset of
  references whose [0, 0] entry points to the mask stored as (W, H); transposing gives (H, W).
  Mask values are 0 (background) and 1 (foreground).

Preprocessing as Chefer's evaluation: the image is resized to 224 x 224 (squash, no crop) with
torchvision's Resize on the PIL image (bilinear, PIL's antialiased filter, uint8 output, then scaled
to [0, 1]); the mask is resized with nearest neighbour (PIL NEAREST). Chefer's script builds exactly
this pipeline (Resize((224, 224)) then ToTensor; Resize((224, 224), NEAREST) on the mask).

The file has no class labels (Chefer explains the model's predicted class): every item's label is -1.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import InterpolationMode

from harness.data.item import CorruptItemError, Item

SOURCE_URL = "http://calvin-vision.net/bigstuff/proj-imagenet/data/gtsegs_ijcv.mat"
ENV_VAR = "FVIT_IMAGENET_SEG"
NO_LABEL = -1
IMAGE_KEY, MASK_KEY = "value/img", "value/gt"


class ImageNetSegmentation(Dataset):
    """`Item`s of ImageNet-Segmentation: image (3, S, S) in [0,1], label -1, mask (S, S) uint8 {0, 1}.

    path: the `gtsegs_ijcv.mat` file. size: output side (224); None keeps the stored resolution.
    """

    def __init__(self, path: str | os.PathLike, size: int | None = 224):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(missing_message(self.path))
        if size is not None and size < 1:
            raise ValueError(f"size must be positive or None, got {size}")
        self.size = size
        try:
            with h5py.File(self.path, "r") as f:
                self._length = _check_layout(f, self.path)
        except OSError as err:  # h5py's error for a file that is not HDF5 (or truncated)
            raise ValueError(
                f"{self.path} is not a readable MATLAB v7.3 (HDF5) file ({err}); re-download gtsegs_ijcv.mat "
                f"from {SOURCE_URL}"
            ) from None
        self._file: h5py.File | None = None

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> Item:
        if not 0 <= index < self._length:
            raise IndexError(f"index {index} out of range for {self._length} items")
        try:
            image, mask = self.raw(index)
        except (OSError, KeyError) as err:  # a damaged HDF5 object or reference
            raise CorruptItemError(self.path, f"item {index}: {err}") from None
        pil_image, pil_mask = Image.fromarray(image).convert("RGB"), Image.fromarray(mask)
        if self.size is not None:
            pil_image = TF.resize(pil_image, [self.size, self.size], InterpolationMode.BILINEAR)
            pil_mask = TF.resize(pil_mask, [self.size, self.size], InterpolationMode.NEAREST)
        return Item(
            TF.to_tensor(pil_image),
            NO_LABEL,
            torch.from_numpy(np.array(pil_mask, dtype=np.uint8)),
            f"imagenet-seg-{index:05d}",
        )

    def raw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The stored image (H, W, 3) uint8 and mask (H, W) uint8 of item `index`, correctly oriented."""
        f = self._open()
        image = np.asarray(f[f[IMAGE_KEY][index, 0]])
        if image.dtype != np.uint8:
            raise ValueError(f"{self.path}: image {index} has dtype {image.dtype}; expected uint8")
        if image.ndim == 3 and image.shape[0] == 3:
            image = image.transpose(2, 1, 0)
        elif image.ndim == 2:  # a grey image stored (W, H)
            image = image.T
        else:
            raise ValueError(f"{self.path}: image {index} has shape {image.shape}; expected (3, W, H) or (W, H)")
        cell = f[f[MASK_KEY][index, 0]]
        if cell.dtype != h5py.ref_dtype or cell.size < 1:
            raise ValueError(f"{self.path}: mask {index} is not a MATLAB cell of references")
        mask = np.asarray(f[cell[0, 0] if cell.ndim == 2 else cell[0]])
        if mask.ndim != 2:
            raise ValueError(f"{self.path}: mask {index} has shape {mask.shape}; expected (W, H)")
        mask = mask.T
        if mask.shape != image.shape[:2]:
            raise ValueError(f"{self.path}: item {index}: mask {mask.shape} does not match image {image.shape[:2]}")
        if not np.isin(np.unique(mask), (0, 1)).all():
            raise ValueError(f"{self.path}: mask {index} is not binary (values {np.unique(mask)[:10].tolist()})")
        return np.ascontiguousarray(image), np.ascontiguousarray(mask.astype(np.uint8))

    def _open(self) -> h5py.File:
        if self._file is None:  # opened lazily, once per process (DataLoader workers get their own)
            self._file = h5py.File(self.path, "r")
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = None
        return state


def _check_layout(f: h5py.File, path: Path) -> int:
    """Validate the two reference datasets; return the number of items."""
    lengths = []
    for key in (IMAGE_KEY, MASK_KEY):
        if key not in f:
            raise ValueError(f"{path}: dataset '{key}' is missing; not an ImageNet-Segmentation file ({SOURCE_URL})")
        ds = f[key]
        if not isinstance(ds, h5py.Dataset) or ds.dtype != h5py.ref_dtype:
            raise ValueError(f"{path}: '{key}' must be a dataset of object references, got {ds}")
        if ds.ndim != 2 or ds.shape[1] != 1:
            raise ValueError(f"{path}: '{key}' has shape {ds.shape}; expected (N, 1)")
        lengths.append(ds.shape[0])
    if lengths[0] != lengths[1]:
        raise ValueError(f"{path}: {lengths[0]} images but {lengths[1]} masks")
    if lengths[0] == 0:
        raise ValueError(f"{path}: the file holds no images")
    return lengths[0]


def missing_message(path: Path | None) -> str:
    where = f"ImageNet-Segmentation file not found: {path}." if path else "No ImageNet-Segmentation file given."
    return (
        f"{where} Download gtsegs_ijcv.mat from {SOURCE_URL} and pass its path "
        f"(or set the environment variable {ENV_VAR} to it)."
    )
