"""The compute plan of a set of experiment configs: how many UNet and ViT calls they need, and the
GPU-hours those imply at stated per-call times (`fvit-bench cost --plan`).

Counted per image, from the runner's order of work (`harness.runner.experiment`): one clean
prediction; per attacked radius, PGD's `attack_steps` forward + backward passes and one prediction;
per radius and method, the plain map; per DDS variant and radius, m purified samples (m x the variant's
UNet calls per sample, shared by every method), m predictions on them, and m maps per method; the
perturbation test adds 2 curves x 9 deletion steps of forwards per map and explained class. A call is
one image through the network (batching changes the wall time, not the count).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from harness.runner.config import ExperimentConfig
from harness.smoothing.dds import get_variant, re_samples
from harness.smoothing.timesteps import fvit_steps, model_space_std

# (ViT forwards, ViT backwards) of one map. Attribution rollout takes one gradient per block (12 for ViT-B);
# LRP-style methods propagate relevance once, counted as one backward. Unknown methods: one of each.
PAPER_DEPTH = 12
METHOD_PASSES: dict[str, tuple[int, int]] = {
    "raw_attention": (1, 0),
    "rollout": (1, 0),
    "attn_gradcam": (1, 1),
    "transformer_attribution": (1, 1),
    "generic_attention": (1, 1),
    "lrp": (1, 1),
    "partial_lrp": (1, 1),
    "attribution_rollout": (1, PAPER_DEPTH),
    # Baseline maps call no network (their perturbation curves still cost forwards).
    "random_map": (0, 0),
    "centre_map": (0, 0),
    "constant_map": (0, 0),
}
PERTURBATION_STEPS = 9  # deletion fractions 0.1 .. 0.9, one forward each, positive and negative
# Paper dataset sizes: ImageNet-Segmentation, Re's 8% subset of ImageNet val.
DATASET_IMAGES = {"imagenet-seg": 4276, "imagenet-val": 4000}
# Per-call cost assumptions (see README): forward FLOPs from docs/PROTOCOL.md section 7, backward = 2 x forward.
ADM_FORWARD_TFLOP = 1.1
VIT_FORWARD_TFLOP = 0.0176
EFFECTIVE_TFLOPS = 300.0  # sustained TFLOP/s of an H100-class GPU in fp16 / bf16 (about 30% of dense peak)


@dataclass(frozen=True)
class CallTimes:
    """Seconds per image-call: UNet forward, ViT forward, ViT backward."""

    unet: float = ADM_FORWARD_TFLOP / EFFECTIVE_TFLOPS
    vit_forward: float = VIT_FORWARD_TFLOP / EFFECTIVE_TFLOPS
    vit_backward: float = 2 * VIT_FORWARD_TFLOP / EFFECTIVE_TFLOPS


def call_times(
    unet_seconds: float | None = None, vit_seconds: float | None = None, vit_backward_seconds: float | None = None
) -> CallTimes:
    """The plan's seconds per call: measured values where given (e.g. by `harness.cost.gpu_smoke`), else the
    FLOP-rate assumptions; the backward defaults to 2 x the forward (measured or assumed)."""
    for name, value in (("unet", unet_seconds), ("vit", vit_seconds), ("vit-backward", vit_backward_seconds)):
        if value is not None and not value > 0:
            raise ValueError(f"--{name}-seconds must be a positive number of seconds per image-call, got {value}")
    defaults = CallTimes()
    forward = vit_seconds or defaults.vit_forward
    backward = vit_backward_seconds or (2 * vit_seconds if vit_seconds else defaults.vit_backward)
    return CallTimes(unet=unet_seconds or defaults.unet, vit_forward=forward, vit_backward=backward)


PAPER_PLAN_CONFIGS = ("paper_vit_b16_seg.yaml", "paper_vit_b16_perturbation.yaml")


def paper_plan_paths() -> list[str]:
    """The configs `fvit-bench cost --plan` counts by default: the ViT-B/16 segmentation and perturbation runs."""
    folder = Path(__file__).resolve().parents[1] / "configs"
    return [str(folder / name) for name in PAPER_PLAN_CONFIGS]


_STEPS = SimpleNamespace(fvit_num_steps=lambda sigma: fvit_steps(model_space_std(sigma)))  # no weights needed


def _samples(spec, task: str, attacked: bool) -> int:
    if spec.samples is not None:
        return int(spec.samples)
    return re_samples(task, attacked) if spec.variant == "re" else get_variant(spec.variant).default_samples


def calls_per_image(cfg: ExperimentConfig) -> dict[str, dict[str, int]]:
    """Calls per image of `cfg`, by part ('attack', 'plain', each DDS variant): unet, vit_forward, vit_backward."""
    task = "segmentation" if "segmentation" in cfg.tasks else "perturbation"
    modes = len(cfg.explain_classes) if "perturbation" in cfg.tasks else 1
    perturb = 2 * PERTURBATION_STEPS if "perturbation" in cfg.tasks else 0
    methods = cfg.resolved_methods()
    passes = [METHOD_PASSES.get(m, (1, 1)) for m in methods]
    attacked = [r for r in cfg.radii_255 if r > 0]
    out = {
        "attack": {
            "unet": 0,
            "vit_forward": 1 + len(attacked) * (cfg.attack_steps + 1),
            "vit_backward": len(attacked) * cfg.attack_steps,
        }
    }
    maps = len(cfg.radii_255) * modes
    out["plain"] = {
        "unet": 0,
        "vit_forward": maps * sum(f + perturb for f, _ in passes),
        "vit_backward": maps * sum(b for _, b in passes),
    }
    for spec in cfg.dds:
        variant = get_variant(spec.variant)
        sigma = variant.default_sigma if spec.sigma is None else spec.sigma
        per_sample = variant.unet_calls(_STEPS if variant.needs_denoiser else None, sigma)
        part = {"unet": 0, "vit_forward": 0, "vit_backward": 0}
        for r in cfg.radii_255:
            m = _samples(spec, task, r > 0)
            part["unet"] += m * per_sample
            part["vit_forward"] += m + modes * sum(m * f + perturb for f, _ in passes)
            part["vit_backward"] += modes * sum(m * b for _, b in passes)
        out[spec.variant] = part
    return out


def plan_table(
    configs: list[ExperimentConfig], images: dict[str, int] | None = None, times: CallTimes = CallTimes()
) -> pd.DataFrame:
    """One row per (config, part): calls for the whole dataset and the GPU-hours they imply."""
    images = {**DATASET_IMAGES, **(images or {})}
    rows = []
    for cfg in configs:
        n = cfg.limit if cfg.limit is not None else images.get(cfg.dataset, 0)
        for part, calls in calls_per_image(cfg).items():
            seconds = (
                calls["unet"] * times.unet
                + calls["vit_forward"] * times.vit_forward
                + calls["vit_backward"] * times.vit_backward
            )
            rows.append(
                {
                    "config": cfg.name,
                    "dataset": cfg.dataset,
                    "images": n,
                    "part": part,
                    "unet_calls": n * calls["unet"],
                    "vit_forward_calls": n * calls["vit_forward"],
                    "vit_backward_calls": n * calls["vit_backward"],
                    "gpu_hours": n * seconds / 3600,
                }
            )
    table = pd.DataFrame(rows)
    total = {
        "config": "total",
        "dataset": "",
        "images": int(table.groupby("config")["images"].first().sum()),
        "part": "all",
        **{c: table[c].sum() for c in ("unet_calls", "vit_forward_calls", "vit_backward_calls", "gpu_hours")},
    }
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


def plan_conventions(times: CallTimes) -> tuple[str, ...]:
    return (
        "A call is one image through the network: unet_calls = UNet forwards (ADM-256 at 256x256), "
        "vit_*_calls = ViT-B/16 forwards / backwards at 224x224, for the whole dataset.",
        "part: attack (clean prediction + PGD: attack_steps forward+backward per attacked radius + 1 prediction), "
        "plain (every method's maps + perturbation curves), or a DDS variant (m samples x its UNet calls per "
        "sample, shared by all methods; m predictions; m maps per method; perturbation curves of the fused map).",
        f"gpu_hours = sum(calls x seconds per call) / 3600 with seconds per call: UNet {times.unet * 1e3:.2f} ms, "
        f"ViT forward {times.vit_forward * 1e3:.3f} ms, ViT backward {times.vit_backward * 1e3:.3f} ms "
        f"(default: {ADM_FORWARD_TFLOP} and {VIT_FORWARD_TFLOP} TFLOP per forward, backward = 2 x forward, at "
        f"{EFFECTIVE_TFLOPS:.0f} sustained TFLOP/s, an H100-class GPU in fp16: assumed, not measured; "
        "`--unet-seconds` / `--vit-seconds` / `--vit-backward-seconds` replace them with measured times, "
        "e.g. those `scripts/gpu_smoke.sh` measures).",
        "Not counted: data loading, the 224 <-> 256 resizes, metric computation, idle time.",
    )
