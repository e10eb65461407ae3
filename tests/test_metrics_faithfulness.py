"""FViT's faithfulness measures against brute-force set computations."""

import numpy as np
import pytest
import torch

from harness.metrics.faithfulness import (
    prediction_agreement,
    prediction_tv_distance,
    resolve_k,
    topk_indices,
    topk_overlap,
)


def brute_topk(values: list[float], k: int) -> set[int]:
    return set(sorted(range(len(values)), key=lambda i: (-values[i], i))[:k])


def tied_maps(seed: int, shape=(4, 6, 5)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.round(torch.rand(shape, generator=g) * 5) / 5


@pytest.mark.parametrize("k", [1, 4, 13, 30, 0.1, 0.5, 1.0])
def test_topk_overlap_matches_brute_force(k):
    a, b = tied_maps(0), tied_maps(1)
    count = int(k * 30) if isinstance(k, float) else k
    ours = topk_overlap(a, b, k)
    for i in range(a.shape[0]):
        ta, tb = brute_topk(a[i].reshape(-1).tolist(), count), brute_topk(b[i].reshape(-1).tolist(), count)
        assert ours[i].item() == pytest.approx(len(ta & tb) / count)
        assert set(topk_indices(a, k)[i].tolist()) == ta


def test_overlap_extremes_and_patch_vectors():
    a = torch.rand(3, 196)
    assert torch.equal(topk_overlap(a, a.clone(), 20), torch.ones(3))
    assert torch.equal(topk_overlap(a, -a, 20), torch.zeros(3))  # top 20 vs bottom 20 of 196
    assert torch.equal(topk_overlap(a, torch.rand(3, 196), 1.0), torch.ones(3))  # k = everything


def test_ties_are_broken_towards_lower_indices():
    flat = torch.zeros(1, 8)
    assert topk_indices(flat, 3)[0].tolist() == [0, 1, 2]


def test_k_validation():
    assert resolve_k(np.int64(3), 10) == 3 and resolve_k(0.25, 10) == 2
    with pytest.raises(ValueError, match="outside"):
        resolve_k(11, 10)  # k larger than the map
    with pytest.raises(ValueError, match="outside"):
        resolve_k(0, 10)
    with pytest.raises(ValueError, match="selects no entry"):
        resolve_k(0.05, 10)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        resolve_k(1.5, 10)
    with pytest.raises(TypeError):
        resolve_k(True, 10)
    with pytest.raises(ValueError, match="equal shape"):
        topk_overlap(torch.rand(2, 9), torch.rand(2, 8), 2)
    with pytest.raises(ValueError, match="NaN"):
        topk_overlap(torch.full((1, 4), float("nan")), torch.rand(1, 4), 2)


def test_prediction_agreement_and_distance():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, 7, generator=g), torch.randn(50, 7, generator=g)
    agree = prediction_agreement(a, b)
    assert agree.tolist() == [float(int(a[i].argmax()) == int(b[i].argmax())) for i in range(50)]
    assert 0 < agree.mean() < 1
    assert torch.equal(prediction_agreement(a.argmax(1), b.argmax(1)), agree)
    tv = prediction_tv_distance(a, b)
    for i in range(50):
        pa, pb = np.exp(a[i].double().numpy()), np.exp(b[i].double().numpy())
        pa, pb = pa / pa.sum(), pb / pb.sum()
        assert tv[i].item() == pytest.approx(0.5 * np.abs(pa - pb).sum(), rel=1e-12)
    assert torch.equal(prediction_tv_distance(a, a), torch.zeros(50, dtype=torch.float64))
    with pytest.raises(ValueError, match="shapes differ"):
        prediction_agreement(a, b[:3])
    with pytest.raises(ValueError, match="integer class indices"):
        prediction_agreement(a[:, 0], b[:, 0])
