"""Denoiser: multi-step ancestral sampling (learned and fixed variance), UNet call counts, bad input."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import UNet2DModel
from torch import nn

from harness.models.denoiser import Denoiser, load_denoiser
from harness.models.mini import MINI_UNET_CONFIG
from harness.smoothing.timesteps import fvit_beta, linear_alphas_cumprod


class StubUNet(nn.Module):
    """Outputs eps = 0.1 * x and, with 6 channels, a constant variance value v; counts calls."""

    def __init__(self, out_channels: int, v: float = 0.0, sample_size: int = 8):
        super().__init__()
        self.config = SimpleNamespace(in_channels=3, out_channels=out_channels, sample_size=sample_size)
        self.v, self.timesteps = v, []

    def forward(self, x, t):
        self.timesteps.append(int(t[0]))
        out = [0.1 * x] + ([torch.full_like(x, self.v)] if self.config.out_channels == 6 else [])
        return SimpleNamespace(sample=torch.cat(out, dim=1))


def expected_step(den: Denoiser, x: torch.Tensor, i: int, std: float, noise: torch.Tensor) -> torch.Tensor:
    """guided-diffusion p_sample by hand, float64 scalars."""
    chain = den.chain()
    abar, prev = chain.alphas_cumprod[i], chain.alphas_cumprod_prev[i]
    beta = 1 - abar / prev
    x0 = ((x - np.sqrt(1 - abar) * 0.1 * x) / np.sqrt(abar)).clamp(-1, 1)
    mean = beta * np.sqrt(prev) / (1 - abar) * x0 + (1 - prev) * np.sqrt(1 - beta) / (1 - abar) * x
    return mean + std * noise


@pytest.mark.parametrize(("out_channels", "v"), [(6, 1.0), (6, -1.0), (6, 0.3), (3, 0.0)])
def test_p_sample_variance(out_channels, v):
    den = Denoiser(StubUNet(out_channels, v), linear_alphas_cumprod())
    chain, i = den.chain(), 44
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    got = den.p_sample(x, i, chain, torch.Generator().manual_seed(1))
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    beta_tilde = chain.betas[i] * (1 - chain.alphas_cumprod_prev[i]) / (1 - chain.alphas_cumprod[i])
    frac = (v + 1) / 2 if out_channels == 6 else 0.0  # 3 channels: fixedsmall = beta_tilde
    std = float(np.exp(0.5 * (frac * np.log(chain.betas[i]) + (1 - frac) * np.log(beta_tilde))))
    torch.testing.assert_close(got, expected_step(den, x, i, std, noise).float(), rtol=1e-5, atol=1e-6)
    assert den.unet.timesteps == [int(chain.timesteps[i])] == [177]


def test_last_step_adds_no_noise():
    den = Denoiser(StubUNet(6, 1.0), linear_alphas_cumprod())
    x = torch.randn(1, 3, 8, 8)
    a = den.p_sample(x, 0, den.chain(), torch.Generator().manual_seed(0))
    b = den.p_sample(x, 0, den.chain(), torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


@pytest.mark.parametrize("steps", [0, 1, 45])
def test_ancestral_calls_the_unet_exactly_num_steps_times(steps):
    den = Denoiser(StubUNet(6), linear_alphas_cumprod())
    den.ancestral(torch.zeros(1, 3, 8, 8), steps, torch.Generator().manual_seed(0))
    assert den.unet.timesteps == [int(t) for t in den.chain().timesteps[:steps][::-1]]


def test_fvit_denoise_follows_the_rule():
    den = Denoiser(StubUNet(3), linear_alphas_cumprod())
    out = den.fvit_denoise(torch.rand(2, 3, 12, 12), 4 / 255, torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 12, 12) and out.min() >= 0 and out.max() <= 1
    assert len(den.unet.timesteps) == 45 and den.unet.timesteps[0] == 177
    # delta <= 2/255 in [-1,1] space (1/255 in pixels): no UNet call, only the rescaled noisy input
    den.unet.timesteps.clear()
    x = torch.rand(1, 3, 8, 8)
    out = den.fvit_denoise(x, 1 / 255, torch.Generator().manual_seed(0), add_noise=False, clip=False)
    assert den.unet.timesteps == []
    torch.testing.assert_close(out, ((2 * x - 1) * (1 - fvit_beta(0)) ** 0.5 + 1) / 2)


def test_fvit_denoise_rejects_noise_beyond_the_chain():
    den = Denoiser(StubUNet(3), linear_alphas_cumprod())
    with pytest.raises(ValueError, match="more than the 250-step respaced chain"):
        den.fvit_num_steps(32 / 255)


def test_denoise_paths_are_differentiable_and_one_shot_is_not():
    den = Denoiser(UNet2DModel(**MINI_UNET_CONFIG), linear_alphas_cumprod())
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    den.denoise_one_shot(x, 0.1).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not den.one_shot(x, 0.1).requires_grad


def test_bad_output_channels_are_named():
    with pytest.raises(ValueError, match="output channels"):
        Denoiser(StubUNet(4), linear_alphas_cumprod())


def test_load_denoiser_rejects_wrong_architecture(tmp_path):
    unet = UNet2DModel(**MINI_UNET_CONFIG)
    unet.save_pretrained(str(tmp_path / "ok"))
    assert load_denoiser(tmp_path / "ok").sample_size == 64
    # weights of one architecture under the config of another
    cfg = json.loads((tmp_path / "ok" / "config.json").read_text())
    cfg["block_out_channels"] = [8, 16, 32, 64]
    (tmp_path / "ok" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="does not hold a loadable diffusers UNet2DModel"):
        load_denoiser(tmp_path / "ok")
    cfg["_class_name"] = "UNet2DConditionModel"
    (tmp_path / "ok" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="not a UNet2DModel"):
        load_denoiser(tmp_path / "ok")
    six = UNet2DModel(**{**MINI_UNET_CONFIG, "out_channels": 4})
    six.save_pretrained(str(tmp_path / "four"))
    with pytest.raises(ValueError, match="output channels"):
        load_denoiser(tmp_path / "four")
