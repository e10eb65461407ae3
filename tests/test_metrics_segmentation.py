"""Segmentation metrics against an independent transcription of Chefer's procedure and a brute-force AP."""

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from harness.metrics.segmentation import (
    STAT_KEYS,
    aggregate_segmentation,
    average_precision,
    image_ap,
    segmentation_stats,
)


def chefer_reference(maps: list[torch.Tensor], masks: list[torch.Tensor]) -> dict[str, float]:
    """Chefer's evaluation step by step: NaN-normalise, two-channel output, argmax, histograms."""
    correct = labeled = 0
    inter, union = np.zeros(2), np.zeros(2)
    aps = []
    for m, gt in zip(maps, masks, strict=True):
        res = m.float()[None, None]
        res = (res - res.min()) / (res.max() - res.min())  # NaN for a constant map
        thr = res.mean()
        fg, bg = res.gt(thr).float(), res.le(thr).float()
        ap_fg, ap_bg = res.clone(), 1 - res
        for t in (fg, bg, ap_fg, ap_bg):
            t[t != t] = 0
        out = torch.cat([bg, fg], 1)[0]  # (2, H, W)
        out_ap = torch.cat([ap_bg, ap_fg], 1)[0]
        pred = out.argmax(0).numpy()
        g = gt.long().numpy()
        correct += int((pred == g).sum())
        labeled += g.size
        for c in (0, 1):
            inter[c] += ((pred == c) & (g == c)).sum()
            union[c] += ((pred == c) | (g == c)).sum()
        onehot = torch.zeros(2, *g.shape).scatter_(0, torch.from_numpy(g)[None], 1).numpy().ravel()
        aps.append(np.nan_to_num(average_precision_score(onehot, out_ap.numpy().ravel())))
    iou = inter / (np.spacing(1) + union)
    return {"pixel_accuracy": 100 * correct / labeled, "mIoU": 100 * iou.mean(), "mAP": 100 * np.mean(aps)}


def brute_force_ap(scores: np.ndarray, truth: np.ndarray) -> float:
    """AP = sum over distinct thresholds t (descending) of (R(t) - R(prev)) * P(t), by explicit loops."""
    positives = int(truth.sum())
    ap, prev_recall = 0.0, 0.0
    for t in sorted(set(scores.tolist()), reverse=True):
        tp = sum(1 for s, y in zip(scores, truth, strict=True) if s >= t and y == 1)
        fp = sum(1 for s, y in zip(scores, truth, strict=True) if s >= t and y == 0)
        recall = tp / positives
        ap += (recall - prev_recall) * tp / (tp + fp)
        prev_recall = recall
    return ap


def random_case(rng: np.random.Generator, h: int = 12, w: int = 10, levels: int | None = None):
    m = rng.random((h, w)).astype(np.float32)
    if levels:
        m = np.round(m * levels) / levels  # ties
    mask = np.zeros((h, w), np.uint8)
    y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
    mask[y0 : y0 + rng.integers(2, h // 2 + 2), x0 : x0 + rng.integers(2, w // 2 + 2)] = 1
    return torch.from_numpy(m), torch.from_numpy(mask)


def test_matches_chefer_procedure_on_random_maps():
    rng = np.random.default_rng(0)
    maps, masks = zip(*[random_case(rng, levels=(None, 5)[i % 2]) for i in range(8)], strict=True)
    maps = [*maps, torch.full((12, 10), 0.3), 2.0 + 5.0 * maps[0]]  # a constant map, an unnormalised map
    masks = [*masks, masks[1], masks[2]]
    rows = [segmentation_stats(m, g) for m, g in zip(maps, masks, strict=True)]
    assert all(set(r) == set(STAT_KEYS) for r in rows)
    ours, ref = aggregate_segmentation(rows), chefer_reference(maps, masks)
    for key in ref:
        assert ours[key] == pytest.approx(ref[key], rel=1e-12), key


@pytest.mark.parametrize("levels", [None, 3])
def test_image_ap_matches_sklearn_and_brute_force(levels):
    rng = np.random.default_rng(1)
    m, mask = random_case(rng, 6, 5, levels)
    m = (m - m.min()) / (m.max() - m.min())
    scores = np.concatenate([1 - m.numpy().ravel(), m.numpy().ravel()])
    truth = np.concatenate([mask.numpy().ravel() == 0, mask.numpy().ravel() == 1]).astype(int)
    ap = image_ap(m.numpy(), mask.numpy())
    assert ap == pytest.approx(average_precision_score(truth, scores), rel=1e-12)
    assert ap == pytest.approx(brute_force_ap(scores, truth), rel=1e-9)


@pytest.mark.parametrize("levels", [None, 2, 7, 255])
def test_average_precision_equals_sklearn(levels):
    """`average_precision` replaces sklearn's call for speed: equal on random scores, with and without ties."""
    rng = np.random.default_rng(levels or 0)
    for n in (1, 2, 17, 300, 4096):
        scores = rng.random(n).astype(np.float32)
        if levels:
            scores = np.round(scores * levels) / levels
        truth = rng.random(n) < rng.uniform(0.05, 0.95)
        truth[rng.integers(n)] = True  # at least one positive
        assert average_precision(truth, scores) == pytest.approx(average_precision_score(truth, scores), rel=1e-12)
    assert average_precision(np.zeros(5, bool), np.arange(5.0)) == 0.0  # no positive (Chefer: NaN -> 0)
    with pytest.raises(ValueError, match="labels for"):
        average_precision(np.ones(3, bool), np.arange(4.0))


def test_constant_map_is_chefers_nan_map():
    mask = torch.zeros(8, 8, dtype=torch.uint8)
    mask[:3] = 1
    for value in (0.0, 0.7):
        stats = segmentation_stats(torch.full((8, 8), value), mask)
        assert stats["inter_fg"] == 0 and stats["union_fg"] == mask.sum()  # everything predicted background
        assert stats["correct"] == (mask == 0).sum()
        pooled = np.concatenate([mask.numpy().ravel() == 0, mask.numpy().ravel() == 1])
        assert stats["ap"] == pytest.approx(pooled.mean())  # all scores equal: AP = positive rate


def test_values_equal_to_the_mean_are_background():
    m = torch.tensor([[0.0, 0.5, 1.0]])
    stats = segmentation_stats(m, torch.tensor([[0, 1, 1]], dtype=torch.uint8))
    assert stats["inter_fg"] == 1 and stats["union_fg"] == 2 and stats["correct"] == 2


def test_empty_and_full_masks():
    rng = np.random.default_rng(2)
    m, _ = random_case(rng)
    empty, full = torch.zeros(m.shape, dtype=torch.uint8), torch.ones(m.shape, dtype=torch.uint8)
    s_empty, s_full = segmentation_stats(m, empty), segmentation_stats(m, full)
    n_fg = int((m > m.mean()).sum())
    assert s_empty["inter_fg"] == 0 and s_empty["union_fg"] == n_fg and s_empty["correct"] == m.numel() - n_fg
    assert s_full["inter_bg"] == 0 and s_full["union_bg"] == m.numel() - n_fg and s_full["correct"] == n_fg
    assert 0 < s_empty["ap"] <= 1 and 0 < s_full["ap"] <= 1


def test_class_with_zero_union_counts_as_zero_iou():
    # Every mask empty and every map constant: fg union is 0 over the dataset; Chefer's mean keeps it as 0.
    mask = torch.zeros(4, 4, dtype=torch.uint8)
    rows = [segmentation_stats(torch.zeros(4, 4), mask) for _ in range(2)]
    out = aggregate_segmentation(rows)
    assert out["pixel_accuracy"] == 100.0
    assert out["mIoU"] == pytest.approx(50.0)  # bg IoU 1, fg IoU 0
    assert out["mIoU"] == pytest.approx(chefer_reference([torch.zeros(4, 4)] * 2, [mask] * 2)["mIoU"])


def test_affine_rescaling_does_not_change_stats():
    rng = np.random.default_rng(3)
    m, mask = random_case(rng)
    m = (m - m.min()) / (m.max() - m.min())
    assert segmentation_stats(m, mask) == segmentation_stats(m * 4.0 - 1.0, mask)


def test_bad_inputs_are_named():
    m = torch.rand(4, 4)
    with pytest.raises(ValueError, match="shape"):
        segmentation_stats(m, torch.zeros(4, 5, dtype=torch.uint8))
    with pytest.raises(ValueError, match="binary"):
        segmentation_stats(m, torch.full((4, 4), 255, dtype=torch.uint8))
    with pytest.raises(ValueError, match="NaN"):
        segmentation_stats(torch.full((4, 4), float("nan")), torch.zeros(4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="no rows"):
        aggregate_segmentation([])
    with pytest.raises(KeyError, match="ap"):
        aggregate_segmentation([{"correct": 1.0}])
