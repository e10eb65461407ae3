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

Caveat: the draw depends on torch's CPU ``exponential_`` kernel. CPU ``multinomial`` without replacement
is ``topk(w / q)`` with ``q = exponential_()`` drawn from the same generator, and that kernel has two
forms (both replayed here, ``kernel=``):

- ``"torch"`` (default): the element-wise kernel, ``q = -log1p(-u)`` from uniform doubles. It is the one
  installed here (torch 2.14) and the one of torch 2.6.0 stable (the values pytorch/pytorch#150538
  reports for 2.6.0 are reproduced by it); the MKL path was compiled out after pytorch/pytorch#132395
  (Aug 2024, "Disable MKL rng until #132395 is addressed").
- ``"mkl-mcg31"``: the MKL path of the torch MKL builds before that (PR #69967, through 2.4, and again in
  a 2.7 nightly window): one generator draw seeds an MKL MCG31m1 stream (``random64()`` for doubles,
  truncated to the 32-bit MKL seed; x0 = seed mod (2^31 - 1)), ``u_i = x_i / (2^31 - 1)`` starting at x0,
  ``q = -ln(u)`` (MKL's ICDF method; torch adds DBL_MIN, which changes no ordering here). The float32
  form of this model reproduces the nightly values of pytorch/pytorch#150538 (tests/test_re_subset.py).

Re's environment (``FViT-main/fixed_env.yaml``: conda channels ``pytorch`` + ``nvidia``, no versions; the
``pytorch`` channel's last release is 2.5.1) points to torch 2.5.x, which on this evidence has the
element-wise kernel; that is why it is the default, but Re's torch version is not recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import PurePath
from typing import TypeVar

import numpy as np
import torch

RE_FRACTION, RE_SEED = 0.08, 44
KERNELS = ("torch", "mkl-mcg31")
MCG31_M, MCG31_A = 2**31 - 1, 1132489760  # MKL's MCG31m1: x_{i+1} = A x_i mod M
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


def mcg31_uniforms(seed: int, n: int) -> np.ndarray:
    """n doubles of MKL's MCG31m1 stream seeded `seed` (32-bit), starting at x0 = seed mod M."""
    x = (seed & 0xFFFFFFFF) % MCG31_M or 1
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        out[i] = x / MCG31_M
        x = (MCG31_A * x) % MCG31_M
    return out


def re_subset_indices(n: int, fraction: float = RE_FRACTION, seed: int = RE_SEED, kernel: str = "torch") -> list[int]:
    """Indices into range(n) that Re's loader yields, in draw order (see the module docstring).

    Replays the draws on a private generator, so the global torch state is left untouched.
    """
    count = re_subset_size(n, fraction)
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    gen = torch.Generator().manual_seed(seed)
    torch.empty((), dtype=torch.int64).random_(generator=gen)  # the DataLoader iterator's base seed
    weights = torch.as_tensor([1.0 / n] * n, dtype=torch.double)
    if kernel == "torch":
        return torch.multinomial(weights, count, replacement=False, generator=gen).tolist()
    # int64 random_ is random64() mod 2^63: its low 32 bits are the 32-bit MKL seed of random64()
    mkl_seed = int(torch.empty((), dtype=torch.int64).random_(generator=gen).item()) & 0xFFFFFFFF
    q = torch.from_numpy(-np.log(mcg31_uniforms(mkl_seed, n)))
    return torch.topk(weights / q, count).indices.tolist()


def re_subset_ids(
    file_list: Sequence[T], fraction: float = RE_FRACTION, seed: int = RE_SEED, kernel: str = "torch"
) -> list[T]:
    """The entries of `file_list` in Re's subset, in Re's order.

    `file_list` must be in the dataset's index order, torchvision's ImageNet val order (see
    `torchvision_val_order`); it is not re-sorted here, because the order defines the indices.
    """
    return [file_list[i] for i in re_subset_indices(len(file_list), fraction, seed, kernel)]


def torchvision_val_order(paths: Iterable[str | PurePath]) -> list[str]:
    """`paths` like ``n01440764/ILSVRC2012_val_00000293.JPEG`` in torchvision's ImageFolder order.

    ImageFolder walks the sorted class folders and, within each, the sorted file names, so the key is
    (class folder name, file name); for equal-length wnid folder names this equals plain string order.
    """
    items = [PurePath(p) for p in paths]
    return [str(p) for p in sorted(items, key=lambda p: (p.parent.name, p.name))]
