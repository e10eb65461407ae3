"""Recipe for the embedded world's tiny diffusion denoiser (diffusers UNet2DModel, eps-prediction)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from harness.data.embedded import EmbeddedShapes, stack
from harness.models.denoiser import Denoiser
from harness.models.mini import MINI_DENOISER_DIR, MINI_SCHEDULER_CONFIG, MINI_UNET_CONFIG
from harness.smoothing.timesteps import linear_alphas_cumprod
from harness.train.common import (
    earlier_stages,
    environment,
    random_dihedral,
    run_stages,
    seed_everything,
    training_images,
)

BAR_SIGMAS_255 = (4, 8, 16, 32)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB between image batches in [0,1] (peak 1), over all pixels."""
    mse = F.mse_loss(a, b).item()
    return float("inf") if mse == 0 else 10.0 * torch.log10(torch.tensor(1.0 / mse)).item()


@torch.no_grad()
def one_shot_psnr_gain(
    denoiser: Denoiser, sigmas: tuple[float, ...], length: int = 200, seed: int = 1234
) -> dict[float, dict[str, float]]:
    """For each pixel-space sigma: PSNR (dB) of the clipped noisy input and of the one-shot denoised one."""
    images, _, _ = stack(EmbeddedShapes("test", length=length))
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for sigma in sigmas:
        noisy = images + sigma * torch.randn(images.shape, generator=gen)
        den = torch.cat([denoiser.one_shot(noisy[i : i + 100], sigma) for i in range(0, length, 100)])
        p_in, p_out = psnr(noisy.clamp(0, 1), images), psnr(den, images)
        out[sigma] = {"noisy_db": p_in, "denoised_db": p_out, "gain_db": p_out - p_in}
    return out


def train_mini_denoiser(
    out_dir: Path = MINI_DENOISER_DIR,
    steps: int = 1200,
    batch_size: int = 32,
    lr: float = 1e-3,
    t_max: int = 400,
    seed: int = 0,
    threads: int | None = None,
    train_size: int | None = None,
    eval_size: int = 200,
    world: str = "cluttered",
    init_from: Path | None = None,
    ema_decay: float = 0.999,
) -> dict:
    """Train the tiny UNet on the embedded train split of `world` (from scratch, or on from the folder
    `init_from`) and save it with save_pretrained.

    Timesteps are drawn as floor(t_max * u^2), u ~ U(0,1): dense at small t, where the one-shot
    denoiser works for the noise levels the embedded world uses (t* = 6..73 for 4..32/255).
    """
    threads = seed_everything(seed, threads)
    images, _, _ = training_images(train_size, world=world)
    unet = UNet2DModel(**MINI_UNET_CONFIG) if init_from is None else UNet2DModel.from_pretrained(str(init_from))
    unet.to(memory_format=torch.contiguous_format)
    ema = EMAModel(unet.parameters(), decay=ema_decay)
    abar = torch.tensor(linear_alphas_cumprod(), dtype=torch.float32)
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    unet.train()
    bar = tqdm(range(steps), desc="train mini denoiser", unit="step")
    for step in bar:
        idx = torch.randint(0, len(images), (batch_size,), generator=gen)
        x0 = random_dihedral(images[idx], gen) * 2 - 1
        t = (t_max * torch.rand(batch_size, generator=gen) ** 2).long()
        eps = torch.randn(x0.shape, generator=gen)
        a = abar[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
        loss = F.mse_loss(unet(x_t, t).sample, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        ema.step(unet.parameters())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    ema.copy_to(unet.parameters())
    unet.eval()
    gains = one_shot_psnr_gain(Denoiser(unet, abar.double().numpy()), tuple(s / 255 for s in BAR_SIGMAS_255), eval_size)
    meta = {
        "recipe": "harness.train.mini_denoiser.train_mini_denoiser",
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "t_max": t_max,
        "seed": seed,
        "world": world,
        "init_from": None if init_from is None else str(init_from),
        "ema_decay": ema_decay,
        "train_size": len(images),
        "one_shot_psnr_db": {f"{round(s * 255)}/255": v for s, v in gains.items()},
        "train_seconds": round(time.perf_counter() - start, 1),
        **environment(),
    }
    meta["threads"] = threads
    out_dir = Path(out_dir)
    unet.to(memory_format=torch.contiguous_format)  # Denoiser made it channels-last; safetensors stores contiguous
    unet.save_pretrained(str(out_dir))
    DDPMScheduler(**MINI_SCHEDULER_CONFIG).save_pretrained(str(out_dir / "scheduler"))
    (out_dir / "training_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


# The shipped checkpoint's recipe: stage 1 learns on the "single" curriculum world (one centred shape on smooth
# clutter; its output is the denoiser shipped before the cluttered world, 2,262 s on one thread), stage 2 goes
# on from it on the embedded world's textured clutter with a shorter EMA (the fine-tune is short).
RECIPE_STAGES: tuple[dict, ...] = (
    {"steps": 1200, "lr": 1e-3, "seed": 0, "world": "single"},
    {"steps": 400, "lr": 5e-4, "seed": 1, "ema_decay": 0.99},
)


def train_mini_denoiser_recipe(out_dir: Path = MINI_DENOISER_DIR, threads: int | None = 1, start: int = 0) -> dict:
    """Run RECIPE_STAGES[start:] (stage k from stage k-1; `start` > 0 goes on from the checkpoint in `out_dir`,
    the output of stage start-1) and save the last to `out_dir`, with every stage's metadata in
    training_meta.json ("stages"; those before `start` read from the checkpoint's own)."""
    out_dir = Path(out_dir)
    saved = out_dir / "training_meta.json"
    earlier = earlier_stages(json.loads(saved.read_text()) if saved.is_file() else {}, start, saved)
    metas = run_stages(train_mini_denoiser, RECIPE_STAGES, out_dir, threads, start, earlier)
    meta = {"recipe": "harness.train.mini_denoiser.train_mini_denoiser_recipe", "stages": metas}
    (out_dir / "training_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    config = out_dir / "config.json"  # from_pretrained records the folder it read: not part of the checkpoint
    config.write_text(
        json.dumps({k: v for k, v in json.loads(config.read_text()).items() if k != "_name_or_path"}, indent=2) + "\n"
    )
    return meta
