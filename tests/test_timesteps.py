"""Timestep rules and the respaced chain against docs/PROTOCOL.md section 4."""

from __future__ import annotations

import numpy as np
import pytest

from harness.smoothing.timesteps import (
    carlini_timestep,
    fvit_beta,
    fvit_steps,
    linear_alphas_cumprod,
    model_space_std,
    respaced_timesteps,
    sampling_schedule,
)


@pytest.mark.parametrize(("sigma", "t_star"), [(0.25, 145), (0.5, 259), (1.0, 396)])
def test_carlini_timesteps(sigma, t_star):
    abar = linear_alphas_cumprod()
    assert carlini_timestep(sigma, abar) == t_star
    ratio = np.sqrt((1 - abar) / abar)
    assert ratio[t_star] >= 2 * sigma > ratio[t_star - 1]


def test_fvit_rule_eight_over_255_gives_45_steps_from_timestep_177():
    delta = model_space_std(4 / 255)  # pixel 4/255 is FViT's delta = 8/255 in [-1,1] space
    assert delta == pytest.approx(8 / 255)
    steps = fvit_steps(delta)
    assert steps == 45
    assert fvit_beta(steps) == pytest.approx(delta**2 / (1 + delta**2), rel=0.02)
    assert abs(respaced_timesteps()[steps - 1] - 177) <= 1


@pytest.mark.parametrize("delta", [0.0, 1 / 255, 2 / 255])
def test_fvit_rule_small_delta_gives_no_steps(delta):
    assert fvit_steps(delta) == 0


def test_fvit_rule_is_monotone_and_clipped():
    steps = [fvit_steps(d / 255) for d in range(0, 200)]
    assert steps == sorted(steps) and steps[-1] == 1000 and fvit_steps(3 / 255) > 0
    with pytest.raises(ValueError, match="delta"):
        fvit_steps(-0.1)


def test_respaced_chain_matches_guided_diffusion_definition():
    ts = respaced_timesteps(1000, 250)
    assert len(ts) == 250 and ts[0] == 0 and ts[-1] == 999 and np.all(np.diff(ts) >= 4)
    abar = linear_alphas_cumprod()
    chain = sampling_schedule(abar, ts)
    # the chain's betas compose back to the original abar at every visited step
    np.testing.assert_allclose(np.cumprod(1 - chain.betas), abar[ts], rtol=1e-12)
    # full chain = the original schedule
    full = sampling_schedule(abar, np.arange(1000))
    np.testing.assert_allclose(full.betas, np.linspace(1e-4, 0.02, 1000), rtol=1e-9)
    assert full.posterior_log_variance_clipped[0] == full.posterior_log_variance_clipped[1]
    assert chain.alphas_cumprod.dtype == np.float64
