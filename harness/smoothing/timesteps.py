"""Diffusion schedules and the timestep rules of the DDS variants (docs/PROTOCOL.md section 4).

Schedules are computed in float64: diffusers keeps alphas_cumprod in float32, which can move a
borderline timestep by one.

Units. Users give noise levels as standard deviations in [0,1] pixel units. The denoiser works in
[-1,1] ("model space"), where the same noise has twice the std: `model_space_std` is THE one place
that converts. FViT's and Re's delta is defined in model space (delta = 8/255 there is 4/255 of
pixel range), so `fvit_steps` takes a model-space delta and callers convert with `model_space_std`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BETA_START, BETA_END, NUM_TRAIN_STEPS = 1e-4, 0.02, 1000
FVIT_RESPACED_STEPS = 250


def model_space_std(sigma_pixel: float) -> float:
    """Pixel-space noise std (images in [0,1]) -> the std of the same noise in [-1,1] space (x2)."""
    return 2.0 * float(sigma_pixel)


def linear_alphas_cumprod(
    num_steps: int = NUM_TRAIN_STEPS, beta_start: float = BETA_START, beta_end: float = BETA_END
) -> np.ndarray:
    """abar_t for t = 0..num_steps-1 of guided-diffusion's linear beta schedule, float64."""
    betas = np.linspace(beta_start, beta_end, num_steps, dtype=np.float64)
    return np.cumprod(1.0 - betas)


def carlini_timestep(sigma: float, alphas_cumprod: np.ndarray) -> int:
    """Carlini et al.'s one-shot timestep for pixel-space noise `sigma` (images in [0,1]).

    In the model's [-1,1] space the noise std is 2*sigma; t* is the first t with
    sqrt((1 - abar_t) / abar_t) >= 2*sigma.
    """
    if not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"noise level sigma must be a positive pixel-space std, got {sigma}")
    ratio = np.sqrt((1.0 - alphas_cumprod) / alphas_cumprod)
    hits = np.nonzero(ratio >= model_space_std(sigma))[0]
    if hits.size == 0:
        max_sigma = ratio[-1] / 2.0
        raise ValueError(
            f"sigma={sigma} (pixel units) exceeds the largest noise level of the schedule ({max_sigma:.3f})"
        )
    return int(hits[0])


def fvit_beta(
    t: float, num_steps: int = NUM_TRAIN_STEPS, beta_start: float = BETA_START, beta_end: float = BETA_END
) -> float:
    """FViT's per-step beta of 1-indexed step t: (t - 1)/(T - 1) (beta_end - beta_start) + beta_start."""
    return (t - 1) / (num_steps - 1) * (beta_end - beta_start) + beta_start


def fvit_steps(
    delta: float, num_steps: int = NUM_TRAIN_STEPS, beta_start: float = BETA_START, beta_end: float = BETA_END
) -> int:
    """FViT's rule: the t solving fvit_beta(t) = delta^2/(1 + delta^2), rounded, clipped to [0, T].

    `delta` is a MODEL-SPACE ([-1,1]) std (convert pixel units with `model_space_std`). The result is
    used as the number of ancestral sampling steps on the 250-respaced schedule (FViT's code does
    so): delta = 8/255 gives 45, delta <= 2/255 gives 0.
    """
    if not np.isfinite(delta) or delta < 0:
        raise ValueError(f"delta must be a non-negative model-space std, got {delta}")
    beta = delta**2 / (1.0 + delta**2)
    t = np.around(1.0 + (num_steps - 1) * (beta - beta_start) / (beta_end - beta_start))
    return int(np.clip(t, 0, num_steps))


def respaced_timesteps(num_steps: int = NUM_TRAIN_STEPS, count: int = FVIT_RESPACED_STEPS) -> np.ndarray:
    """guided-diffusion's `space_timesteps(num_steps, str(count))`: `count` evenly strided original steps.

    Index i maps to round(i (num_steps - 1)/(count - 1)) (Python rounding of the running sum, as there).
    """
    if not 1 < count <= num_steps:
        raise ValueError(f"cannot respace {num_steps} steps to {count}")
    stride = (num_steps - 1) / (count - 1)
    taken, cur = [], 0.0
    for _ in range(count):
        taken.append(round(cur))
        cur += stride
    return np.asarray(taken, dtype=np.int64)


@dataclass(frozen=True)
class SamplingSchedule:
    """Per-index float64 quantities of a (respaced) DDPM chain for ancestral sampling (p_sample).

    timesteps[i] is the ORIGINAL timestep the UNet is called with at chain index i.
    """

    timesteps: np.ndarray
    alphas_cumprod: np.ndarray
    alphas_cumprod_prev: np.ndarray
    betas: np.ndarray
    posterior_variance: np.ndarray
    posterior_log_variance_clipped: np.ndarray
    posterior_mean_coef_x0: np.ndarray
    posterior_mean_coef_xt: np.ndarray

    def __len__(self) -> int:
        return len(self.timesteps)


def sampling_schedule(alphas_cumprod: np.ndarray, timesteps: np.ndarray) -> SamplingSchedule:
    """The chain that visits `timesteps` of a schedule with `alphas_cumprod` (guided-diffusion's respacing).

    betas_i = 1 - abar_i / abar_{i-1}; posterior q(x_{i-1} | x_i, x0) variance and mean coefficients
    as in guided-diffusion, with the log variance at i = 0 clipped to that of i = 1.
    """
    abar = np.asarray(alphas_cumprod, dtype=np.float64)[np.asarray(timesteps)]
    prev = np.append(1.0, abar[:-1])
    betas = 1.0 - abar / prev
    post_var = betas * (1.0 - prev) / (1.0 - abar)
    log_clipped = np.log(np.append(post_var[1], post_var[1:])) if len(abar) > 1 else np.log(betas)
    return SamplingSchedule(
        timesteps=np.asarray(timesteps, dtype=np.int64),
        alphas_cumprod=abar,
        alphas_cumprod_prev=prev,
        betas=betas,
        posterior_variance=post_var,
        posterior_log_variance_clipped=log_clipped,
        posterior_mean_coef_x0=betas * np.sqrt(prev) / (1.0 - abar),
        posterior_mean_coef_xt=(1.0 - prev) * np.sqrt(1.0 - betas) / (1.0 - abar),
    )
