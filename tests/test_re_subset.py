"""Re's 8% ImageNet-val subset (seed 44): the ids Re's drawing procedure yields on fake file lists."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, WeightedRandomSampler
from torchvision.datasets import ImageFolder

from harness.data.imagenet_val import ImageNetVal
from harness.data.re_subset import (
    RE_FRACTION,
    RE_SEED,
    SUBSET_NAME,
    re_subset_ids,
    re_subset_indices,
    re_subset_size,
    torchvision_val_order,
)
from harness.data.registry import get_dataset


def fake_val_list(classes: int, per_class: int) -> list[str]:
    """`classes` wnid folders of `per_class` val file names each, numbered like the real release."""
    wnids = [f"n{(7919 * k) % 10007:08d}" for k in range(1, classes + 1)]
    numbers = np.random.default_rng(5).permutation(classes * per_class) + 1
    return [f"{wnids[i // per_class]}/ILSVRC2012_val_{n:08d}.JPEG" for i, n in enumerate(numbers)]


def res_loader_ids(file_list: list[str], ratio: float = RE_FRACTION, seed: int = RE_SEED) -> list[str]:
    """Re's procedure itself: seed_everything(seed), then a batch-1 DataLoader over their sampler."""
    n = len(file_list)
    with torch.random.fork_rng():
        random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)  # seeder.seed_everything
        sampler = WeightedRandomSampler(weights=[1.0 / n] * n, num_samples=int(n * ratio), replacement=False)
        loader = DataLoader(file_list, batch_size=1, shuffle=False, num_workers=0, sampler=sampler)
        return [batch[0] for batch in loader]


def spelled_out_indices(n: int, ratio: float = RE_FRACTION, seed: int = RE_SEED) -> list[int]:
    """The same draws written out: base seed, then multinomial without replacement as exponential + topk."""
    gen = torch.Generator().manual_seed(seed)
    gen_state_before_base_seed = gen.get_state()
    base_seed = torch.empty((), dtype=torch.int64).random_(generator=gen)  # DataLoader iterator's base seed
    assert not torch.equal(gen.get_state(), gen_state_before_base_seed) and base_seed.item() >= 0
    q = torch.empty(n, dtype=torch.double).exponential_(1.0, generator=gen)
    scores = torch.full((n,), 1.0 / n, dtype=torch.double) / q
    return torch.topk(scores, int(n * ratio)).indices.tolist()


def test_subset_equals_res_loader_on_a_fake_file_list():
    files = torchvision_val_order(fake_val_list(classes=25, per_class=20))  # 500 files
    ours = re_subset_ids(files)
    assert ours == res_loader_ids(files)
    assert len(ours) == 40 == int(500 * 0.08) and len(set(ours)) == 40 and set(ours) <= set(files)
    assert ours == [files[i] for i in spelled_out_indices(500)]


def test_full_validation_set_size_order_and_determinism():
    n = 50_000
    ours = re_subset_indices(n)
    assert len(ours) == 4000 == re_subset_size(n) and len(set(ours)) == 4000
    assert min(ours) >= 0 and max(ours) < n
    assert ours == spelled_out_indices(n) == re_subset_indices(n)  # deterministic, same draws spelled out
    assert ours != sorted(ours)  # draw order is kept: Re's loop writes images in this order
    assert re_subset_indices(n, seed=45) != ours


def test_torch_kernel_is_the_elementwise_exponential():
    """multinomial draws q = -log1p(-u) from uniform doubles in this torch; if this fails, the subset moved."""
    n = 1000
    gen = torch.Generator().manual_seed(RE_SEED)
    torch.empty((), dtype=torch.int64).random_(generator=gen)
    u = torch.empty(n, dtype=torch.double).uniform_(generator=gen)
    expected = torch.topk(torch.full((n,), 1.0 / n, dtype=torch.double) / -torch.log1p(-u), 80).indices
    assert re_subset_indices(n) == expected.tolist(), (
        f"torch {torch.__version__}: CPU exponential_ is no longer -log1p(-u) of uniform doubles, so "
        "multinomial draws another subset; see harness/data/re_subset.py"
    )


def test_global_generator_is_untouched():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    re_subset_indices(2000)
    assert torch.equal(torch.get_rng_state(), state)


def test_torchvision_order_matches_image_folder(tmp_path):
    files = fake_val_list(classes=4, per_class=5)
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")  # ImageFolder lists by extension, it opens nothing
    folder_order = [str(Path(path).relative_to(tmp_path)) for path, _ in ImageFolder(str(tmp_path)).samples]
    assert torchvision_val_order(reversed(files)) == folder_order


def test_bad_arguments():
    for n, fraction, message in ((0, 0.08, "subset of 0"), (10, 1.5, r"\(0, 1\]"), (6, 0.08, "selects none")):
        with pytest.raises(ValueError, match=message):
            re_subset_indices(n, fraction)


def test_named_dataset_option(tmp_path):
    root = tmp_path / "val"
    files = torchvision_val_order(fake_val_list(classes=3, per_class=4))
    for k, rel in enumerate(files):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((5, 7, 3), k, np.uint8)).save(root / rel.replace(".JPEG", ".png"))
    full = ImageNetVal(root, size=4, expected_classes=None)
    sub = get_dataset("imagenet-val-re8", root, size=4, expected_classes=None, subset_fraction=0.5)
    named = ImageNetVal(root, size=4, expected_classes=None, subset=SUBSET_NAME, subset_fraction=0.5)
    ids = [full[i].item_id for i in range(len(full))]
    assert (
        [sub[i].item_id for i in range(len(sub))]
        == re_subset_ids(ids, 0.5)
        == [named[i].item_id for i in range(len(named))]
    )
    assert len(sub) == 6
    with pytest.raises(ValueError, match="takes no subset"):
        get_dataset("imagenet-val-re8", root, expected_classes=None, subset="other")


# pytorch/pytorch#150538: after torch.manual_seed(42); torch.rand(5), torch.empty(5).exponential_(1) printed
# these in torch 2.6.0 stable and in the 2.8 nightlies from 2025-02-02 on (float32, 4 decimals)
ISSUE_150538_STABLE = [1.6459, 0.4294, 0.0677, 1.3809, 0.7803]
ISSUE_150538_NIGHTLY = [0.5809, 0.0436, 2.0548, 1.9680, 0.3315]


def legacy_mt19937_raw(seed: int, count: int) -> list[int]:
    """The raw 32-bit outputs of mt19937 seeded like torch.manual_seed(seed) (init_genrand)."""
    bits = np.random.MT19937()
    bits._legacy_seeding(seed)
    return [int(v) for v in bits.random_raw(count)]


def test_both_kernel_models_reproduce_the_issue_values():
    torch.manual_seed(42)
    assert torch.allclose(torch.rand(5), torch.tensor([0.8823, 0.9150, 0.3829, 0.9593, 0.3904]), atol=1e-4)
    assert torch.allclose(torch.empty(5).exponential_(1), torch.tensor(ISSUE_150538_STABLE), atol=1e-4)
    raw = legacy_mt19937_raw(42, 6)  # five draws for rand(5), then the 32-bit MKL seed of a float tensor
    assert [r & 0xFFFFFF for r in raw[:5]] == [
        int(v * 2**24) for v in torch.rand(5, generator=(torch.Generator().manual_seed(42)))
    ]
    m = 2**31 - 1
    x = raw[5] % m
    assert raw[5] > m  # the seed's reduction mod M is exercised
    ours = []
    for _ in range(5):
        ours.append(-np.log(x / m))
        x = (1132489760 * x) % m
    assert np.allclose(ours, ISSUE_150538_NIGHTLY, atol=1e-4)


def test_mkl_kernel_spelled_out_on_a_fake_file_list():
    files = torchvision_val_order(fake_val_list(classes=25, per_class=20))
    raw = legacy_mt19937_raw(RE_SEED, 4)  # 2 for the base seed's random64, 2 for the MKL seed's random64
    m, n = 2**31 - 1, len(files)
    x0 = raw[3] % m  # random64() = (raw[2] << 32) | raw[3]; MKL keeps the low 32 bits
    q = np.array([-np.log(x0 * pow(1132489760, i, m) % m / m) for i in range(n)])
    expected = np.argsort(-((1.0 / n) / q), kind="stable")[:40]
    ours = re_subset_ids(files, kernel="mkl-mcg31")
    assert ours == [files[i] for i in expected]
    assert len(set(ours)) == 40 and ours != re_subset_ids(files)


def test_mkl_kernel_on_the_full_validation_set():
    ours = re_subset_indices(50_000, kernel="mkl-mcg31")
    assert len(ours) == 4000 == len(set(ours)) and ours == re_subset_indices(50_000, kernel="mkl-mcg31")
    overlap = len(set(ours) & set(re_subset_indices(50_000)))
    assert overlap < 600  # two independent 8% draws share about 8% of 4,000 (320), not the same images
    with pytest.raises(ValueError, match="kernel"):
        re_subset_indices(100, kernel="philox")
