"""Datasets by name: ``get_dataset(name, root=None, **options)``.

- "embedded": the embedded world's test split (`EmbeddedShapes("test", **options)`); needs no files.
- "imagenet-seg": ImageNet-Segmentation; root = path of gtsegs_ijcv.mat, default $FVIT_IMAGENET_SEG.
- "imagenet-val": ImageNet val; root = its folder, default $FVIT_IMAGENET_VAL; ``subset="re"`` gives
  Re's 8% subset.
- "imagenet-val-re8": the same folder restricted to Re's 8% subset, seed 44, in Re's order
  (`harness.data.re_subset`); what Re's 4,000-image runs are compared with.
Options go to the dataset class (see `harness.data.imagenet_seg`, `harness.data.imagenet_val`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from harness.data.embedded import EmbeddedShapes

SEG_ENV_VAR, VAL_ENV_VAR = "FVIT_IMAGENET_SEG", "FVIT_IMAGENET_VAL"
DATASETS: dict[str, str] = {
    "embedded": "embedded world, test split (64x64 shapes with masks, 10 classes); no files",
    "imagenet-seg": f"ImageNet-Segmentation gtsegs_ijcv.mat; root or ${SEG_ENV_VAR}",
    "imagenet-val": f"ImageNet ILSVRC2012 validation folder; root or ${VAL_ENV_VAR}",
    "imagenet-val-re8": f"Re's 8% subset (seed 44, 4,000 of 50,000) of ImageNet val; root or ${VAL_ENV_VAR}",
}


def _root(root: str | os.PathLike | None, env_var: str) -> Path | None:
    if root is not None:
        return Path(root)
    value = os.environ.get(env_var, "").strip()
    return Path(value) if value else None


def get_dataset(name: str, root: str | os.PathLike | None = None, **options: Any) -> Dataset:
    """The dataset registered as `name`, built with `options`."""
    if name == "embedded":
        if root is not None:
            raise ValueError("the embedded dataset is generated, it takes no root")
        return EmbeddedShapes("test", **options)
    if name == "imagenet-seg":  # imported here: the embedded world needs neither h5py nor scipy
        from harness.data import imagenet_seg

        path = _root(root, SEG_ENV_VAR)
        if path is None:
            raise FileNotFoundError(imagenet_seg.missing_message(None))
        return imagenet_seg.ImageNetSegmentation(path, **options)
    if name in ("imagenet-val", "imagenet-val-re8"):
        from harness.data import imagenet_val

        path = _root(root, VAL_ENV_VAR)
        if path is None:
            raise FileNotFoundError(imagenet_val.missing_message(None))
        if name == "imagenet-val-re8":
            if options.get("subset", "re") not in ("re", imagenet_val.SUBSET_NAME):
                raise ValueError(f"imagenet-val-re8 is Re's subset; it takes no subset={options['subset']!r}")
            options = {**options, "subset": "re"}
        return imagenet_val.ImageNetVal(path, **options)
    raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")


def names() -> list[str]:
    return sorted(DATASETS)
