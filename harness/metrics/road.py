"""ROAD: RemOve And Debias (Rong, Leemann, Borisov, Kasneci, Kasneci, ICML 2022), without retraining.

The perturbation test's black pixels move the image off the data distribution, so a drop in accuracy
mixes "relevant pixels removed" with "image looks odd". ROAD removes pixels by *noisy linear
imputation* instead: every removed pixel takes the weighted mean of its 8 neighbours (weight 1/6
for the 4 direct, 1/12 for the 4 diagonal ones, renormalised at the border), solved jointly for all
removed pixels of an image as one sparse linear system per channel (scipy's `spsolve`), plus
Gaussian noise of std `noise` ([0, 1] pixel units, default 0.01), clipped to [0, 1].

Curves: top-1 correctness against the label at [clean, 0.1, ..., 0.9] removed (the perturbation
test's 10-point layout and its stable, row-major tie-break), MoRF (most relevant first; lower is
better) and LeRF (least relevant first; higher is better). AUC: trapezoid of acc@0.1..0.9 / 8
(Re's convention, `perturbation.re_auc`; max 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import spsolve

from harness.metrics.perturbation import PERTURBATION_STEPS, _check_maps, _top1, deleted_counts, deletion_order

ROAD_NOISE = 0.01
# (row offset, col offset, weight): 4 direct neighbours 1/6, 4 diagonal 1/12 (sum 1).
NEIGHBOURS: tuple[tuple[int, int, float], ...] = tuple(
    (dr, dc, 1 / 6 if dr == 0 or dc == 0 else 1 / 12) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)
)


def linear_impute(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """(C, H, W) image with the `removed` (H, W) pixels replaced by the noise-free linear imputation.

    For each removed pixel p: sum_q w_q * x_p - sum_{q removed} w_q * x_q = sum_{q kept} w_q * v_q over
    its in-image neighbours q, so x_p is the weighted mean of its neighbours' (imputed or kept) values.
    """
    c, h, w = image.shape
    if removed.shape != (h, w):
        raise ValueError(f"mask {removed.shape} does not match image {(h, w)}")
    if removed.all():
        raise ValueError("every pixel is removed: the linear imputation has nothing to average")
    idx = -np.ones((h, w), dtype=np.int64)
    rows, cols = np.nonzero(removed)
    n = rows.size
    if n == 0:
        return image.copy()
    idx[rows, cols] = np.arange(n)
    diag = np.zeros(n)
    a_i, a_j, a_v = [], [], []
    rhs = np.zeros((n, c))
    for dr, dc, wt in NEIGHBOURS:
        r2, c2 = rows + dr, cols + dc
        ok = (r2 >= 0) & (r2 < h) & (c2 >= 0) & (c2 < w)
        diag[ok] += wt
        p, r2, c2 = np.nonzero(ok)[0], r2[ok], c2[ok]
        q = idx[r2, c2]
        unknown = q >= 0
        a_i.append(p[unknown])
        a_j.append(q[unknown])
        a_v.append(np.full(unknown.sum(), -wt))
        rhs[p[~unknown]] += wt * image[:, r2[~unknown], c2[~unknown]].T
    i = np.concatenate([np.arange(n), *a_i])
    j = np.concatenate([np.arange(n), *a_j])
    v = np.concatenate([diag, *a_v])
    solution = spsolve(coo_matrix((v, (i, j)), shape=(n, n)).tocsc(), rhs)
    out = image.copy()
    out[:, rows, cols] = np.asarray(solution).reshape(n, c).T
    return out


def road_images(
    images: torch.Tensor,
    maps: torch.Tensor,
    positive: bool,
    steps: Sequence[float] = PERTURBATION_STEPS,
    noise: float = ROAD_NOISE,
    seed: int = 0,
) -> torch.Tensor:
    """(S, B, 3, H, W): each step's images with the ranked pixels removed by noisy linear imputation."""
    _check_maps(images, maps)
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    b, _, h, w = images.shape
    order = deletion_order(maps, positive).cpu().numpy()
    clean = images.detach().cpu().double().numpy()
    rng = np.random.default_rng(seed)
    out = np.empty((len(steps), *clean.shape))
    for s, k in enumerate(deleted_counts(h * w, steps)):
        for i in range(b):
            removed = np.zeros(h * w, dtype=bool)
            removed[order[i, :k]] = True
            removed = removed.reshape(h, w)
            img = linear_impute(clean[i], removed)
            img[:, removed] += noise * rng.standard_normal((img.shape[0], int(removed.sum())))
            out[s, i] = np.clip(img, 0.0, 1.0)
    return torch.from_numpy(out).to(images.dtype).to(images.device)


def road_correctness(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    maps: torch.Tensor,
    labels: torch.Tensor,
    positive: bool,
    noise: float = ROAD_NOISE,
    seed: int = 0,
    max_batch: int = 256,
) -> torch.Tensor:
    """(B, 10) correctness in {0, 1} at [clean, 0.1, ..., 0.9] removed by ROAD's imputation.

    positive=True is MoRF (most relevant removed first), False is LeRF.
    """
    labels = torch.as_tensor(labels, device=images.device).long().reshape(-1)
    if labels.numel() != images.shape[0] or (labels < 0).any():
        raise ValueError("ROAD needs one ground-truth label (>= 0) per image")
    stack = torch.cat([images[None], road_images(images, maps, positive, PERTURBATION_STEPS, noise, seed)])
    pred = _top1(model, stack.flatten(0, 1), max_batch).view(stack.shape[0], -1)
    return (pred == labels[None]).float().T
