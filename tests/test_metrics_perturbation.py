"""Perturbation tests and both AUC conventions against brute-force loops."""

import numpy as np
import pytest
import torch

from harness.metrics.perturbation import (
    CURVE_X,
    PERTURBATION_STEPS,
    chefer_auc,
    clean_correctness,
    deleted_counts,
    deletion_order,
    explanation_target,
    perturb_images,
    perturbation_correctness,
    perturbation_test,
    re_auc,
)


class PixelSumModel(torch.nn.Module):
    """A deterministic stand-in classifier: logits are the masses of fixed random pixel weightings."""

    def __init__(self, h: int, w: int, classes: int = 4):
        super().__init__()
        self.weights = torch.rand(classes, 3, h, w, generator=torch.Generator().manual_seed(5))
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        return torch.einsum("bchw,kchw->bk", x.double(), self.weights.double())


def brute_order(m: torch.Tensor, positive: bool) -> list[int]:
    values = m.reshape(-1).tolist()
    key = (lambda i: (-values[i], i)) if positive else (lambda i: (values[i], i))
    return sorted(range(len(values)), key=key)


def quantised_maps(b: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.round(torch.rand(b, h, w, generator=g) * 4) / 4  # many ties


@pytest.mark.parametrize("positive", [True, False])
def test_deletion_order_is_the_stable_brute_force_order(positive):
    maps = quantised_maps(3, 5, 7, 0)
    order = deletion_order(maps, positive)
    for b in range(3):
        assert order[b].tolist() == brute_order(maps[b], positive)


def test_constant_map_deletes_in_row_major_order_in_both_tests():
    maps = torch.zeros(1, 4, 4)
    assert deletion_order(maps, True)[0].tolist() == list(range(16))
    assert deletion_order(maps, False)[0].tolist() == list(range(16))


@pytest.mark.parametrize("positive", [True, False])
def test_perturb_images_deletes_the_right_pixels(positive):
    b, h, w = 2, 6, 9
    images = torch.rand(b, 3, h, w) * 0.9 + 0.1  # no zeros before deletion
    maps = quantised_maps(b, h, w, 1)
    out = perturb_images(images, maps, positive)
    assert out.shape == (len(PERTURBATION_STEPS), b, 3, h, w)
    for s, p in enumerate(PERTURBATION_STEPS):
        k = int(h * w * p)
        for i in range(b):
            expected = images[i].clone()
            for idx in brute_order(maps[i], positive)[:k]:
                expected[:, idx // w, idx % w] = 0.0
            assert torch.equal(out[s, i], expected)


def test_deleted_counts_floor_as_chefer():
    counts = deleted_counts(224 * 224)
    assert counts == [int(224 * 224 * p) for p in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)]
    assert counts[0] == 5017  # floor of 5017.6
    with pytest.raises(ValueError, match="outside"):
        deleted_counts(10, [1.5])


@pytest.mark.parametrize("positive", [True, False])
def test_correctness_matches_per_image_loop_and_batches_forwards(positive):
    b, h, w = 3, 8, 8
    images = torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(2))
    maps = torch.rand(b, h, w, generator=torch.Generator().manual_seed(3))
    model = PixelSumModel(h, w)
    labels = model(images).argmax(1)
    labels[0] = (labels[0] + 1) % 4  # one image wrong from the start
    model.calls.clear()
    correct = perturbation_correctness(model, images, maps, labels, positive)
    assert model.calls == [b, 9 * b]  # the clean images alone, then the 9 steps in one forward
    assert correct.shape == (b, 10)
    for i in range(b):
        expected = [float(model(images[i : i + 1]).argmax(1).item() == labels[i])]
        order = brute_order(maps[i], positive)
        for p in PERTURBATION_STEPS:
            x = images[i].clone()
            for idx in order[: int(h * w * p)]:
                x[:, idx // w, idx % w] = 0
            expected.append(float(model(x[None]).argmax(1).item() == labels[i]))
        assert correct[i].tolist() == expected
    model.calls.clear()
    assert torch.equal(perturbation_correctness(model, images, maps, labels, positive, max_batch=7), correct)
    assert model.calls == [3, 6, 6, 6, 6, 3]  # whole steps per call: 2 steps of 3 images fit in 7
    model.calls.clear()
    assert torch.equal(perturbation_correctness(model, images, maps, labels, positive, max_batch=2), correct)
    assert model.calls == [2, 1] * 10  # a step larger than max_batch is split
    model.calls.clear()
    clean = clean_correctness(model, images, labels)
    assert clean.tolist() == correct[:, 0].tolist() and model.calls == [b]
    model.calls.clear()
    shared = perturbation_correctness(model, images, maps, labels, positive, clean=clean)
    assert torch.equal(shared, correct) and model.calls == [9 * b]  # the given clean point is not recomputed
    with pytest.raises(ValueError, match="clean correctness"):
        perturbation_correctness(model, images, maps, labels, positive, clean=clean[:2])


def test_relevant_region_separates_positive_from_negative():
    """A model that is right only while a region is intact: a map on that region wins both tests."""
    h = w = 10
    region = torch.zeros(h, w, dtype=torch.bool)
    region[2:5, 3:7] = True  # 12 of 100 pixels

    def model(x):
        intact = (x[:, :, region] > 0).all(dim=(1, 2))
        return torch.stack([(~intact).double(), intact.double()], 1)

    images = torch.rand(1, 3, h, w) * 0.5 + 0.5
    maps = region.float()[None] + 0.01 * torch.rand(1, h, w)
    labels = torch.tensor([1])
    pos = perturbation_test(model, images, maps, labels, positive=True, explained="target")
    neg = perturbation_test(model, images, maps, labels, positive=False, explained="target")
    assert pos.curve().tolist() == [1.0] + [0.0] * 9  # the first 10 pixels deleted lie in the region
    assert neg.curve().tolist() == [1.0] * 9 + [0.0]  # the region is deleted only at 90%
    assert chefer_auc(pos.curve()) < chefer_auc(neg.curve()) and re_auc(pos.curve()) < re_auc(neg.curve())
    assert (pos.test, neg.test, pos.explained) == ("positive", "negative", "target")


def brute_trapezoid(x, y):
    return sum((x[i + 1] - x[i]) * (y[i] + y[i + 1]) / 2 for i in range(len(x) - 1))


def test_auc_conventions_match_brute_force():
    rng = np.random.default_rng(4)
    curves = rng.random((5, 10))
    for c in curves:
        assert chefer_auc(c) == pytest.approx(100 * brute_trapezoid(list(CURVE_X), list(c)), rel=1e-12)
        assert re_auc(c) == pytest.approx(brute_trapezoid(list(range(9)), list(c[1:])) / 8, rel=1e-12)
    np.testing.assert_allclose(chefer_auc(curves), [chefer_auc(c) for c in curves], rtol=1e-12)
    np.testing.assert_allclose(re_auc(torch.from_numpy(curves)), [re_auc(c) for c in curves], rtol=1e-12)
    # linear: the AUC of the mean curve is the mean of the AUCs
    assert chefer_auc(curves.mean(0)) == pytest.approx(np.mean(chefer_auc(curves)), rel=1e-12)


def test_auc_extremes_and_the_clean_point():
    ones = np.ones(10)
    assert chefer_auc(ones) == pytest.approx(90.0) and re_auc(ones) == pytest.approx(1.0)
    other = ones.copy()
    other[0] = 0.0  # only Chefer's AUC uses the clean point
    assert re_auc(other) == re_auc(ones) and chefer_auc(other) == pytest.approx(90.0 - 5.0)


def test_bad_inputs_are_named():
    images, maps = torch.rand(2, 3, 4, 4), torch.rand(2, 4, 4)
    with pytest.raises(ValueError, match="10-point"):
        re_auc(np.ones(9))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        chefer_auc(np.full(10, 100.0))
    with pytest.raises(ValueError, match="maps must be"):
        perturb_images(images, torch.rand(2, 4, 5), True)
    with pytest.raises(ValueError, match="NaN"):
        perturb_images(images, torch.full((2, 4, 4), float("nan")), True)
    with pytest.raises(ValueError, match="label"):
        perturbation_correctness(lambda x: x.flatten(1), images, maps, torch.tensor([-1, 0]), True)
    with pytest.raises(ValueError, match="explained"):
        perturbation_test(lambda x: x.flatten(1), images, maps, torch.tensor([0, 0]), positive=True, explained="top")
    assert explanation_target("pred", torch.tensor([3])) is None
    assert explanation_target("target", torch.tensor([3])).tolist() == [3]


def test_runs_on_the_mini_vit(random_mini_vit):
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pred = random_mini_vit(images).argmax(1)
    result = perturbation_test(random_mini_vit, images, torch.rand(2, 64, 64), pred, positive=True, explained="pred")
    assert result.correct.shape == (2, 10) and set(result.correct.unique().tolist()) <= {0.0, 1.0}
    assert result.correct[:, 0].tolist() == [1.0, 1.0]  # the labels are the clean predictions
