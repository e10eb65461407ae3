"""Cost table: time, energy and CO2 per image of each explanation method, without and with each DDS variant.

Every registered explainer (`harness.explainers.registry.names()`) and every DDS variant
(`harness.smoothing.dds.purifier_names()`) is included by default, so methods and variants added later show
up without changes here. Each cell runs the explainer on the same images, in batches, under one
`EmissionsMeter`; the ratio columns divide a DDS row by the plain row of the same method.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from harness.cost.emissions import CPU_POWER_MODES, DEFAULT_COUNTRY, Emissions, EmissionsMeter
from harness.explainers.registry import Explainer, get_explainer, names
from harness.models.classifier import ViTClassifier, unfused_attention_only
from harness.models.denoiser import Denoiser
from harness.smoothing.dds import SmoothedExplainer, get_variant, purifier_names, smooth

PLAIN = "none"
MEASURES = ("seconds_per_image", "energy_kwh_per_image", "kg_co2eq_per_image", "flops_per_image")
RATIO_COLUMNS = {m: m.replace("_per_image", "_ratio_vs_plain") for m in MEASURES}

COST_CONVENTIONS = (
    "dds: `none` = the plain explanation; otherwise the DDS variant wrapping it (purify m copies, explain each, fuse).",
    "sigma_255: the DDS noise standard deviation in [0,1] pixel units times 255 (FViT/Re's delta = "
    "2 sigma in [-1,1] space); samples_per_image: m; unet_calls_per_image: m x UNet forward calls per "
    "sample (carlini 1; fvit, re, denoise_only the FViT rule's ancestral steps; noise_only 0).",
    "seconds_per_image: wall-clock seconds of the explainer calls (perf_counter; CUDA synchronised) "
    "divided by images x repeats; the warm-up call is not counted.",
    "energy_kwh_per_image: kWh (CPU + GPU + RAM, codecarbon, machine-level) over the same block, "
    "divided by images x repeats; kg_co2eq_per_image: kg CO2-equivalent at the stated grid intensity.",
    "*_ratio_vs_plain: the DDS row's value divided by the plain row's value of the same method (plain rows: 1).",
    "gpu_hours_per_image: seconds_per_image / 3600 on a CUDA device; 0 on CPU (no GPU used).",
    "flops_per_image: floating-point operations of one explanation (forward and backward passes, "
    "torch.utils.flop_counter: matrix products and convolutions), counted in a separate untimed pass: "
    "independent of machine load. predicted_flops_ratio: m + m x UNet calls per sample x FLOPs of one "
    "UNet call / the plain explanation's FLOPs, from the variant's definition.",
    "cpu_power_mode: where the energy figure comes from (RAPL counters are a measurement; a TDP-based "
    "mode is an estimate proportional to time and says so).",
)


@dataclass(frozen=True)
class CostSettings:
    """How the cost table is measured.

    images: images explained per cell; batch_size: images per explainer call; repeats: passes over
    the images per cell; warmup: one untimed call of each plain method on one image (and one UNet
    call) before its cells, so lazy initialisation is not timed; sigma: DDS noise std
    in [0,1] pixel units for every variant (None = `sigma_by_variant`'s entry, else the variant's default);
    sigma_by_variant: (variant, sigma) pairs used when `sigma` is None (the CLI passes the `run` config's,
    so both commands share one default); samples: DDS m for every variant (None = `samples_by_variant`'s
    entry, else the variant's default); samples_by_variant: (variant, m) pairs used when `samples` is None;
    seed: DDS noise seed;
    country_iso_code / carbon_intensity_g_per_kwh: see `EmissionsMeter`.
    """

    images: int = 4
    batch_size: int = 4
    repeats: int = 1
    warmup: bool = True
    sigma: float | None = None
    sigma_by_variant: tuple[tuple[str, float], ...] = ()
    samples: int | None = None
    samples_by_variant: tuple[tuple[str, int], ...] = ()
    seed: int = 0
    country_iso_code: str = DEFAULT_COUNTRY
    carbon_intensity_g_per_kwh: float | None = None

    def __post_init__(self) -> None:
        for name in ("images", "batch_size", "repeats"):
            if getattr(self, name) < 1:
                raise ValueError(f"CostSettings.{name} must be >= 1, got {getattr(self, name)}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_explainer(
    explainer: Explainer, model: ViTClassifier, images: torch.Tensor, settings: CostSettings
) -> tuple[float, Emissions]:
    """(seconds per image, the block's `Emissions`) for `explainer` over `images`, in batches."""
    device = images.device
    meter = EmissionsMeter(
        country_iso_code=settings.country_iso_code,
        force_carbon_intensity_g_co2e_kwh=settings.carbon_intensity_g_per_kwh,
        device=device,
    )
    meter.start()
    start = time.perf_counter()
    for _ in range(settings.repeats):
        for i in range(0, images.shape[0], settings.batch_size):
            explainer(model, images[i : i + settings.batch_size])
    _sync(device)
    seconds = time.perf_counter() - start
    emissions = meter.stop()
    return seconds / (images.shape[0] * settings.repeats), emissions


def count_flops(fn, *args) -> int:
    """FLOPs torch counts (matrix products, convolutions, forward and backward) while running fn(*args); the
    attention runs unfused meanwhile, since the counter does not see inside the CPU SDPA kernel."""
    counter = FlopCounterMode(display=False)
    with unfused_attention_only(), counter:
        fn(*args)
    return int(counter.get_total_flops())


def unet_call_flops(denoiser: Denoiser, image: torch.Tensor) -> int:
    """FLOPs of one UNet forward on one image at the denoiser's resolution."""
    size = denoiser.sample_size
    x = torch.zeros(1, 3, size, size, device=image.device, dtype=image.dtype)
    with torch.no_grad():
        return count_flops(denoiser.predict_eps, x, 1)


def add_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """Add `*_ratio_vs_plain` columns: each row's measure divided by its method's plain (dds='none') row."""
    missing = set(table["method"]) - set(table.loc[table["dds"] == PLAIN, "method"])
    if missing:
        raise ValueError(f"no plain (dds={PLAIN!r}) row for method(s) {sorted(missing)}: cannot form ratios")
    out = table.copy()
    plain = table[table["dds"] == PLAIN].set_index("method")
    for measure, ratio in RATIO_COLUMNS.items():
        base = out["method"].map(plain[measure])
        out[ratio] = out[measure] / base.where(base > 0)
    return out


def _cell(
    method: str,
    dds: str,
    explainer: Explainer,
    model: ViTClassifier,
    images: torch.Tensor,
    settings: CostSettings,
) -> dict:
    seconds, em = measure_explainer(explainer, model, images, settings)
    n = images.shape[0] * settings.repeats
    smoothed = isinstance(explainer, SmoothedExplainer)
    # Counted on one image: matrix products and convolutions are linear in the batch, so this is the
    # per-image count of the whole batch, at a fraction of the counter's cost (it dispatches every op).
    flops = count_flops(explainer, model, images[:1])
    return {
        "method": method,
        "dds": dds,
        "sigma_255": explainer.sigma * 255 if smoothed else math.nan,
        "samples_per_image": explainer.n_samples if smoothed else 1,
        "unet_calls_per_image": explainer.n_samples * explainer.unet_calls_per_sample if smoothed else 0,
        "seconds_per_image": seconds,
        "energy_kwh_per_image": em.energy_kwh / n,
        "kg_co2eq_per_image": em.kg_co2eq / n,
        "flops_per_image": flops,
        "gpu_hours_per_image": seconds / 3600 if images.device.type == "cuda" else 0.0,
        "carbon_intensity_g_per_kwh": em.carbon_intensity_g_per_kwh,
        "cpu_power_mode": em.cpu_power_mode,
        "device": em.device,
    }


def cost_table(
    model: ViTClassifier,
    denoiser: Denoiser | None,
    images: torch.Tensor,
    methods: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
    settings: CostSettings | None = None,
) -> pd.DataFrame:
    """One row per (method, dds) with per-image cost and the with/without-DDS ratios.

    methods: registered explainer names (None = all); variants: DDS variant names (None = all in
    `VARIANTS` but the oracle; variants that need a denoiser are an error when `denoiser` is None). The
    oracle (a positive control that is handed the clean image) has no cost of its own and is refused.
    """
    settings = settings or CostSettings()
    methods = list(names() if methods is None else methods)
    variants = list(purifier_names() if variants is None else variants)
    for v in variants:
        if get_variant(v).needs_clean:
            raise ValueError(
                f"DDS variant {v!r} is a positive control handed the clean image, not a purifier: it has no cost"
            )
        if get_variant(v).needs_denoiser and denoiser is None:
            raise ValueError(f"DDS variant {v!r} needs a denoiser; got None")
    model.check_images(images)
    images = images[: settings.images]
    if settings.warmup and denoiser is not None:
        denoiser.one_shot(images[:1], 0.1)
    unet_flops = unet_call_flops(denoiser, images[:1]) if denoiser is not None else 0
    rows = []
    for method in methods:
        plain = get_explainer(method)
        if settings.warmup:
            plain(model, images[:1])
            _sync(images.device)
        plain_row = _cell(method, PLAIN, plain, model, images, settings)
        plain_row["predicted_flops_ratio"] = 1.0
        rows.append(plain_row)
        for v in variants:
            sigma = settings.sigma if settings.sigma is not None else dict(settings.sigma_by_variant).get(v)
            samples = settings.samples if settings.samples is not None else dict(settings.samples_by_variant).get(v)
            wrapped = smooth(plain, denoiser, v, sigma=sigma, samples=samples, seed=settings.seed)
            row = _cell(method, v, wrapped, model, images, settings)
            unet = wrapped.n_samples * wrapped.unet_calls_per_sample * unet_flops
            row["predicted_flops_ratio"] = wrapped.n_samples + unet / plain_row["flops_per_image"]
            rows.append(row)
    return add_ratios(pd.DataFrame(rows))


def embedded_models(random_weights: bool = False) -> tuple[ViTClassifier, Denoiser, str]:
    """The embedded world's ViT and denoiser, and where their weights came from.

    Falls back to random weights of the same architectures when a shipped checkpoint is missing
    (or when random_weights=True): time and energy do not depend on weight values.
    """
    from diffusers import UNet2DModel

    from harness.models.denoiser import load_denoiser
    from harness.models.mini import (
        MINI_DENOISER_DIR,
        MINI_UNET_CONFIG,
        MINI_VIT_NORM,
        build_mini_vit,
        load_mini_vit,
    )
    from harness.smoothing.timesteps import linear_alphas_cumprod

    if not random_weights:
        try:
            return load_mini_vit(), load_denoiser(MINI_DENOISER_DIR), "shipped embedded-world checkpoints"
        except (FileNotFoundError, ValueError) as err:
            reason = f"random weights (a shipped checkpoint is unavailable: {err})"
    else:
        reason = "random weights (requested)"
    torch.manual_seed(0)
    model = ViTClassifier(build_mini_vit(), **MINI_VIT_NORM, name="random-mini-vit")
    denoiser = Denoiser(UNet2DModel(**MINI_UNET_CONFIG), linear_alphas_cumprod(), name="random-mini-unet")
    return model, denoiser, reason


def paper_architecture_models(device: str | torch.device = "cuda") -> tuple[ViTClassifier, Denoiser]:
    """ViT-B/16 and ADM-256 with seeded random weights on `device`: the papers' cost without their weights
    (time and memory do not depend on weight values)."""
    import timm

    from harness.models.adm_convert import ADM_256_UNCOND, build_unet
    from harness.smoothing.timesteps import linear_alphas_cumprod

    torch.manual_seed(0)
    vit = timm.create_model("vit_base_patch16_224", pretrained=False)
    model = ViTClassifier(vit, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), name="vit_base_patch16_224 (random)").to(device)
    denoiser = Denoiser(build_unet(ADM_256_UNCOND), linear_alphas_cumprod(), name="adm-256 (random)").to(device)
    return model, denoiser


def embedded_images(n: int) -> torch.Tensor:
    """The first `n` images of the embedded test split, (n, 3, 64, 64) in [0,1]."""
    from harness.data.embedded import EmbeddedShapes, stack

    return stack(EmbeddedShapes("test"), range(n))[0]


DISPLAY_COLUMNS = (
    "method",
    "dds",
    "sigma_255",
    "samples_per_image",
    "unet_calls_per_image",
    *MEASURES,
    *RATIO_COLUMNS.values(),
    "predicted_flops_ratio",
    "cpu_power_mode",
)


def write_cost_report(table: pd.DataFrame, out_dir: Path, context: Sequence[str] = ()) -> tuple[Path, Path]:
    """Write cost.csv (every column) and cost.md (title, context, device, table, conventions)."""
    from harness.report.tables import markdown_table

    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / "cost.csv", out_dir / "cost.md"
    table.to_csv(csv_path, index=False)
    modes = "; ".join(f"{m} = {CPU_POWER_MODES.get(m, 'unknown')}" for m in sorted(set(table.cpu_power_mode)))
    intensities = sorted(set(table["carbon_intensity_g_per_kwh"].round(6)))
    facts = [
        f"Device: {'; '.join(sorted(set(table['device'])))}.",
        f"CPU power (codecarbon): {modes}. Only figures with the same mode are comparable.",
        f"Grid carbon intensity (gCO2eq/kWh): {', '.join(f'{x:.3f}' for x in intensities)}.",
    ]
    shown = table[[c for c in DISPLAY_COLUMNS if c in table.columns]]
    lines = ["# Compute cost per image, without and with DDS", ""]
    lines += [f"- {c}" for c in [*context, *facts]]
    lines += ["", markdown_table(shown, floatfmt=".4g"), "", "Conventions:", ""]
    lines += [f"- {c}" for c in COST_CONVENTIONS]
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path
