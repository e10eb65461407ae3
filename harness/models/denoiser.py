"""Diffusion denoiser wrapper: any diffusers UNet2DModel + its linear DDPM schedule.

The wrapper owns the [0,1] <-> [-1,1] mapping and the resize between the classifier's image
size and the UNet's sample size, so callers pass and receive [0,1] pixel-space images, and pixel
noise levels (converted to model space by `harness.smoothing.timesteps.model_space_std`).

Two denoisers: `one_shot` (Carlini et al., one UNet call) and `fvit_denoise` (FViT's multi-step
ancestral sampling on the 250-respaced schedule, `ancestral` below). Both come in a
gradient-transparent form (`denoise_one_shot`, `fvit_denoise`) so attacks can differentiate
through them; `one_shot` keeps its no-grad behaviour.

Variance of the ancestral steps: a 6-channel (learned sigma) UNet's channels 3..5 are v in [-1,1]
and log var = (v+1)/2 log beta_t + (1-v)/2 log beta_tilde_t (guided-diffusion's LEARNED_RANGE).
A 3-channel UNet uses guided-diffusion's 'fixedsmall', beta_tilde_t: the exact variance of
q(x_{t-1} | x_t, x0), which is the right one when, as in denoising a given image, x0 is pinned down
by x_t; it is also the lower end of ADM's learned range and diffusers' DDPMScheduler default, so a
3-channel model never injects more noise than ADM could.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.smoothing.timesteps import (
    FVIT_RESPACED_STEPS,
    SamplingSchedule,
    carlini_timestep,
    fvit_beta,
    fvit_steps,
    linear_alphas_cumprod,
    model_space_std,
    respaced_timesteps,
    sampling_schedule,
)

if TYPE_CHECKING:  # diffusers (~3 s to import) only where a UNet is loaded: load_denoiser
    from diffusers import UNet2DModel

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def parse_dtype(name: str | torch.dtype) -> torch.dtype:
    """'float32' / 'float16' / 'bfloat16' (or a torch dtype among them) -> the torch dtype."""
    if isinstance(name, torch.dtype) and name in DTYPES.values():
        return name
    try:
        return DTYPES[str(name)]
    except KeyError:
        raise ValueError(f"unknown denoiser dtype {name!r}; choose from {sorted(DTYPES)}") from None


class Denoiser(nn.Module):
    """A noise-prediction UNet and its schedule (abar_t kept in float64).

    `unet` must predict eps in its first 3 output channels (3 channels, or 6 with learned sigma). It is
    used for inference only: put in eval mode with its parameters frozen (autograd still flows to the
    input, as the adaptive attack needs, without the weight gradients' cost), its weights in channels-last
    memory format (oneDNN's convolutions then skip a layout reorder per call: a quarter off a forward on
    the CPU; outputs equal to float rounding). The UNet's output is returned in the default layout.
    """

    def __init__(self, unet: UNet2DModel, alphas_cumprod: np.ndarray, name: str = "denoiser"):
        super().__init__()
        out_channels = int(unet.config.out_channels)
        if int(unet.config.in_channels) != 3 or out_channels not in (3, 6):
            raise ValueError(
                f"{name}: expected a UNet with 3 input channels and 3 (eps) or 6 (eps + learned sigma) "
                f"output channels; got in={unet.config.in_channels}, out={out_channels}"
            )
        self.unet = unet.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.name = name
        self.alphas_cumprod = np.asarray(alphas_cumprod, dtype=np.float64)
        self._chains: dict[int, SamplingSchedule] = {}

    @property
    def sample_size(self) -> int:
        size = self.unet.config.sample_size
        return int(size if isinstance(size, int) else size[0])

    @property
    def num_train_timesteps(self) -> int:
        return len(self.alphas_cumprod)

    @property
    def learned_sigma(self) -> bool:
        """True for a 6-channel UNet (ADM's learned-range variance); False = fixedsmall variance."""
        return int(self.unet.config.out_channels) == 6

    def to_model_space(self, images01: torch.Tensor) -> torch.Tensor:
        """[0,1] images at any size -> [-1,1] at the UNet's sample size (bilinear resize)."""
        x = images01 * 2.0 - 1.0
        s = self.sample_size
        if tuple(x.shape[-2:]) != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)
        return x

    def from_model_space(self, x: torch.Tensor, size: tuple[int, int], clip: bool = True) -> torch.Tensor:
        """[-1,1] at the UNet's sample size -> [0,1] at `size`, clipped unless clip=False."""
        if tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        x = (x + 1.0) / 2.0
        return x.clamp(0.0, 1.0) if clip else x

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the UNet computes in (its parameters'; float32 unless `set_dtype` changed it)."""
        param = next(self.unet.parameters(), None)
        return torch.float32 if param is None else param.dtype

    def set_dtype(self, dtype: str | torch.dtype) -> Denoiser:
        """Run the UNet in `dtype` (float16 / bfloat16 as FViT and Re run ADM on a GPU); the chain's
        arithmetic (x0, posterior mean, noise) stays in the caller's float32. Returns self."""
        self._unet_dtype = parse_dtype(dtype)
        if self._unet_dtype != self.dtype:
            for param in self.unet.parameters():  # not unet.to(dtype): diffusers warns on that path
                param.data = param.data.to(self._unet_dtype)
            for buf in self.unet.buffers():
                if buf.is_floating_point():
                    buf.data = buf.data.to(self._unet_dtype)
        return self

    def predict(self, x_t: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """The raw UNet output at original timestep t (3 or 6 channels), in x_t's dtype; one UNet call."""
        if not torch.is_tensor(t):
            t = torch.full((x_t.shape[0],), int(t), device=x_t.device, dtype=torch.long)
        dtype = getattr(self, "_unet_dtype", None)  # inputs are cast only once set_dtype was called
        if dtype is None or dtype == x_t.dtype:
            return self.unet(x_t, t).sample.contiguous()
        return self.unet(x_t.to(dtype), t).sample.to(x_t.dtype).contiguous()

    def predict_eps(self, x_t: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """eps_hat(x_t, t) in model space; one UNet call."""
        return self.predict(x_t, t)[:, :3]

    # --- Carlini et al.: one-shot -------------------------------------------------------------

    def _one_shot(self, x_noisy: torch.Tensor, sigma: float, size: tuple[int, int]) -> torch.Tensor:
        """x0_hat from model-space x' + 2 sigma eps (at the UNet size) -> [0,1] at `size`. One UNet call."""
        t = carlini_timestep(sigma, self.alphas_cumprod)
        abar = float(self.alphas_cumprod[t])
        x_t = abar**0.5 * x_noisy
        eps = self.predict_eps(x_t, t)
        x0 = ((x_t - (1.0 - abar) ** 0.5 * eps) / abar**0.5).clamp(-1.0, 1.0)
        return self.from_model_space(x0, size)

    def carlini_denoise(self, images01: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
        """Carlini's one-shot DDS of [0,1] images at any size (gradient-transparent). One UNet call.

        The image is resized to the UNet size first and the noise, std 2 sigma in [-1,1] space, is
        drawn there: t*(sigma) assumes i.i.d. noise at the UNet's resolution, which noise added
        before a 224 -> 256 resize is not (its std shrinks by about a third).
        """
        x = self.to_model_space(images01)
        x = x + 2.0 * sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return self._one_shot(x, sigma, tuple(images01.shape[-2:]))

    def denoise_one_shot(self, noisy01: torch.Tensor, sigma: float) -> torch.Tensor:
        """`one_shot` without disabling autograd. `noisy01` must carry i.i.d. pixel noise of std sigma
        at the UNet's resolution; for clean images at another size use `carlini_denoise`."""
        return self._one_shot(self.to_model_space(noisy01), sigma, tuple(noisy01.shape[-2:]))

    @torch.no_grad()
    def one_shot(self, noisy01: torch.Tensor, sigma: float) -> torch.Tensor:
        """Carlini's one-shot denoise of x + sigma*eps (pixel units), back in [0,1]. One UNet call.

        x' = 2(x + sigma eps) - 1 carries noise of std 2 sigma; at t* (see `carlini_timestep`)
        x_t = sqrt(abar) x' and x0_hat = (x_t - sqrt(1 - abar) eps_hat) / sqrt(abar), clipped to [-1,1].
        """
        return self.denoise_one_shot(noisy01, sigma)

    # --- FViT: multi-step ancestral sampling on the respaced chain ----------------------------

    def chain(self, count: int = FVIT_RESPACED_STEPS) -> SamplingSchedule:
        """This schedule respaced to `count` steps (cached)."""
        if count not in self._chains:
            steps = respaced_timesteps(self.num_train_timesteps, count)
            self._chains[count] = sampling_schedule(self.alphas_cumprod, steps)
        return self._chains[count]

    def fvit_num_steps(self, sigma: float, count: int = FVIT_RESPACED_STEPS) -> int:
        """UNet calls of `fvit_denoise` at pixel-space `sigma`; raises if the chain is too short."""
        steps = fvit_steps(model_space_std(sigma))
        if steps > count:
            raise ValueError(
                f"FViT's timestep rule gives {steps} sampling steps for sigma={sigma:.4f} (pixel units, "
                f"delta={model_space_std(sigma):.4f} in [-1,1] space), more than the {count}-step respaced "
                "chain has: use a smaller noise level (at most about 9/255 in pixel units)"
            )
        return steps

    def p_sample(self, x: torch.Tensor, i: int, chain: SamplingSchedule, generator: torch.Generator) -> torch.Tensor:
        """One ancestral step x_i -> x_{i-1} of `chain` (guided-diffusion's p_sample, clip_denoised).

        One UNet call at original timestep chain.timesteps[i]; no noise is added at i = 0.
        """
        out = self.predict(x, int(chain.timesteps[i]))
        eps = out[:, :3]
        abar = float(chain.alphas_cumprod[i])
        x0 = ((x - (1.0 - abar) ** 0.5 * eps) / abar**0.5).clamp(-1.0, 1.0)
        mean = float(chain.posterior_mean_coef_x0[i]) * x0 + float(chain.posterior_mean_coef_xt[i]) * x
        if i == 0:
            return mean
        min_log = float(chain.posterior_log_variance_clipped[i])
        if self.learned_sigma:
            frac = (out[:, 3:] + 1.0) / 2.0
            log_var = frac * float(np.log(chain.betas[i])) + (1.0 - frac) * min_log
            std = torch.exp(0.5 * log_var)
        else:
            std = float(np.exp(0.5 * min_log))
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return mean + std * noise

    def ancestral(
        self, x: torch.Tensor, num_steps: int, generator: torch.Generator, count: int = FVIT_RESPACED_STEPS
    ) -> torch.Tensor:
        """Run chain indices num_steps-1 .. 0 of the `count`-respaced chain from model-space x.

        Exactly `num_steps` UNet calls (none for num_steps = 0).
        """
        chain = self.chain(count)
        if not 0 <= num_steps <= len(chain):
            raise ValueError(f"num_steps={num_steps} outside [0, {len(chain)}] of the respaced chain")
        for i in reversed(range(num_steps)):
            x = self.p_sample(x, i, chain, generator)
        return x

    def fvit_denoise(
        self,
        images01: torch.Tensor,
        sigma: float,
        generator: torch.Generator,
        add_noise: bool = True,
        clip: bool = True,
    ) -> torch.Tensor:
        """FViT's `denoise` (gradient-transparent): [0,1] images -> [0,1] images of the same size.

        With delta = model_space_std(sigma) and t = fvit_steps(delta): resize to the UNet size,
        x_t = sqrt(1 - fvit_beta(t)) (x' + delta eps) (add_noise=False drops the delta eps term),
        then t ancestral steps on the 250-respaced chain (t UNet calls), resize back. clip=False
        returns the unclipped values (the caller adds noise and clips once, as FViT does).
        """
        steps = self.fvit_num_steps(sigma)
        x = self.to_model_space(images01)
        if add_noise:
            eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + model_space_std(sigma) * eps
        x = self.ancestral((1.0 - fvit_beta(steps)) ** 0.5 * x, steps, generator)
        return self.from_model_space(x, tuple(images01.shape[-2:]), clip=clip)


def load_denoiser(directory: str | Path, name: str | None = None) -> Denoiser:
    """Load a diffusers UNet2DModel (+ optional `scheduler/` subfolder) saved with save_pretrained."""
    from diffusers import DDPMScheduler, UNet2DModel

    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"denoiser folder {directory} has no config.json: expected a diffusers UNet2DModel saved with "
            "save_pretrained (for the embedded world run `fvit-bench train-mini denoiser`; for ADM-256 run "
            "`fvit-bench convert-adm`)"
        )
    class_name = json.loads(config_path.read_text()).get("_class_name")
    if class_name not in (None, "UNet2DModel"):
        raise ValueError(f"{config_path} describes a {class_name}, not a UNet2DModel: wrong architecture")
    weights = [p.name for p in directory.iterdir() if p.name.startswith("diffusion_pytorch_model")]
    if not weights:
        raise FileNotFoundError(
            f"denoiser folder {directory} has a config.json but no weights (diffusion_pytorch_model.safetensors "
            "or .bin): a UNet would start from random weights; copy the weights file next to config.json"
        )
    try:
        # low_cpu_mem_usage=False: diffusers' default path wants `accelerate` and warns without it; loading
        # the 2.2 GB ADM-256 the plain way holds one extra copy of the weights briefly.
        unet, info = UNet2DModel.from_pretrained(
            str(directory), local_files_only=True, output_loading_info=True, low_cpu_mem_usage=False
        )
    except (OSError, ValueError, RuntimeError) as err:
        raise ValueError(f"{directory} does not hold a loadable diffusers UNet2DModel: {err}") from err
    problems = {k: v for k, v in info.items() if v}
    if problems:  # strict: diffusers would otherwise leave these weights newly initialised
        detail = "; ".join(
            f"{k.replace('_', ' ')}: {', '.join(map(str, v[:5]))}{f' (+{len(v) - 5} more)' if len(v) > 5 else ''}"
            for k, v in problems.items()
        )
        raise ValueError(f"{directory}: the weights do not match the UNet config ({detail})")
    sched_dir = directory / "scheduler"
    if (sched_dir / "scheduler_config.json").is_file():
        cfg = DDPMScheduler.from_pretrained(str(sched_dir), local_files_only=True).config
        if cfg.beta_schedule != "linear":
            raise ValueError(f"{sched_dir}: only the linear beta schedule is supported, got {cfg.beta_schedule}")
        abar = linear_alphas_cumprod(cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end)
    else:
        abar = linear_alphas_cumprod()
    return Denoiser(unet, abar, name=name or directory.name)
