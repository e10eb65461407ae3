"""Re's 8% subset of ImageNet val (seed 44), replayed from the way their code draws it.

What Re's code does (aerdelez/re-fvit, read, not copied):

- ``FViT-main/baselines/ViT/generate_visualizations.py`` (commit 09577ea, ``__main__``): builds
  ``torchvision.datasets.ImageNet(root, split="val")``, then calls ``seeder.seed_everything(args.seed)``
  (``--seed`` defaults to 44), then, as ``--imagenet-subset-ratio`` is below 1, builds the sampler of
  ``create_balanced_dataset_subset`` and iterates ``DataLoader(dataset, batch_size=1, shuffle=False,
  num_workers=0, sampler=sampler)``. Nothing draws from torch's generator between the seeding and the
  first batch.
- ``FViT-main/baselines/ViT/utils/seeder.py`` (4db9227) ``seed_everything``: ``random.seed``,
  ``numpy.random.seed``, ``torch.manual_seed``, ``torch.cuda.manual_seed_all``, all with 44. Only torch's
  default CPU generator takes part in the draw below.
- ``FViT-main/baselines/ViT/data/imagenet.py`` (df930ca) ``create_balanced_dataset_subset``: N = len(dataset),
  weights ``[1/N] * N``, ``WeightedRandomSampler(weights, num_samples=int(N * ratio), replacement=False)``.
- ``perturbations.txt`` (9a189ea): every job passes ``--imagenet-subset-ratio 0.08`` and the default seed,
  so every method, DDS on or off and every radius uses the same 4,000 of the 50,000 images.

In torch this is two draws from the default CPU generator seeded 44: the DataLoader iterator's base seed
(one int64 ``random_``, taken when the iterator is created) and then, at the first batch,
``torch.multinomial(weights_double, int(N * ratio), replacement=False)``. The indices index the dataset in
torchvision's ``ImageNet``/``ImageFolder`` order: class folders (wnids) sorted, file names sorted within
each class. Re's loop writes the images (and, downstream, the per-image perturbation results) in draw
order, so the order is kept here, not sorted.

Caveat, measured here: CPU ``multinomial`` without replacement is ``topk(w / q)`` with
``q = exponential_()`` on the same generator, and the CPU ``exponential_`` kernel changed across torch
releases (an MKL VSL stream seeded from the generator up to 2.6, per pytorch/pytorch#150538 and
#132395; element-wise ``-log1p(-u)`` from uniform doubles in the torch installed here, 2.14). Re's
environment (``FViT-main/fixed_env.yaml``: conda channels ``pytorch`` + ``nvidia``, no versions) points to
torch <= 2.5.1, so the ids below are Re's procedure replayed with this torch's kernel and are not
guaranteed to be the exact images of Re's own run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import PurePath
from typing import TypeVar

import torch

RE_FRACTION, RE_SEED = 0.08, 44
SUBSET_NAME = "re-seed44-8pct"  # the dataset option's name (imagenet-val-re8 / subset="re")
T = TypeVar("T")


def re_subset_size(n: int, fraction: float = RE_FRACTION) -> int:
    """int(n * fraction), as Re's sampler sizes it; checks the arguments."""
    if n < 1:
        raise ValueError(f"cannot take a subset of {n} items")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"subset fraction must lie in (0, 1], got {fraction}")
    count = int(n * fraction)
    if count < 1:
        raise ValueError(f"a fraction {fraction} of {n} items selects none")
    return count


def re_subset_indices(n: int, fraction: float = RE_FRACTION, seed: int = RE_SEED) -> list[int]:
    """Indices into range(n) that Re's loader yields, in draw order (see the module docstring).

    Replays the two draws on a private generator, so the global torch state is left untouched.
    """
    count = re_subset_size(n, fraction)
    gen = torch.Generator().manual_seed(seed)
    torch.empty((), dtype=torch.int64).random_(generator=gen)  # the DataLoader iterator's base seed
    weights = torch.as_tensor([1.0 / n] * n, dtype=torch.double)
    return torch.multinomial(weights, count, replacement=False, generator=gen).tolist()


def re_subset_ids(file_list: Sequence[T], fraction: float = RE_FRACTION, seed: int = RE_SEED) -> list[T]:
    """The entries of `file_list` in Re's subset, in Re's order.

    `file_list` must be in the dataset's index order, torchvision's ImageNet val order (see
    `torchvision_val_order`); it is not re-sorted here, because the order defines the indices.
    """
    return [file_list[i] for i in re_subset_indices(len(file_list), fraction, seed)]


def torchvision_val_order(paths: Iterable[str | PurePath]) -> list[str]:
    """`paths` like ``n01440764/ILSVRC2012_val_00000293.JPEG`` in torchvision's ImageFolder order.

    ImageFolder walks the sorted class folders and, within each, the sorted file names, so the key is
    (class folder name, file name); for equal-length wnid folder names this equals plain string order.
    """
    items = [PurePath(p) for p in paths]
    return [str(p) for p in sorted(items, key=lambda p: (p.parent.name, p.name))]
