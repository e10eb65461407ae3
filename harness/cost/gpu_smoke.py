"""GPU smoke run: the paper path end to end on random weights, with the per-call seconds the cost plan needs.

`run_smoke` builds the classifier and the denoiser once (paper: ViT-B/16 and the full-width ADM-256 UNet,
`harness.cost.timing.paper_architecture_models`; `tiny=True`: a 2-block 32 px ViT and a 16 px UNet, for
the CPU dry run), attacks `images` random images with PGD, then for each UNet dtype runs every DDS variant
(the registry's, less the `identity` control) on the attacked images with every registered explainer
and scores every map with the segmentation and perturbation metrics. It checks that every map and
purified image is finite and that each reduced-precision UNet agrees with float32 within `TOLERANCES`,
times one UNet call, one ViT forward and backward, one map per method, PGD and each variant's
purification, reads the peak memory, and recomputes the `fvit-bench cost --plan` estimate from the
measured seconds. `write_report` writes it all to gpu.md (gpu_tiny.md for the dry run).

The code path is the one a run takes (`SmoothedExplainer.purify` / `explain_purified`, `pgd_linf`,
`segmentation_stats`, `perturbation_correctness`); only the models' sizes differ between paper and tiny.
fp16/bf16: the UNet computes in that dtype (`Denoiser.set_dtype`, the config's `denoiser_dtype`), the
chain's arithmetic and the ViT stay float32; on CPU they are left out unless asked for, and the output
says so. Entry point: `python -m harness.cost.gpu_smoke --help` (`scripts/gpu_smoke.sh` wraps it).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from harness.attacks.pgd import pgd_linf
from harness.explainers.registry import get_explainer, names
from harness.metrics.perturbation import clean_correctness, perturbation_correctness
from harness.metrics.segmentation import segmentation_stats
from harness.models.classifier import ViTClassifier, fused_attention
from harness.models.denoiser import Denoiser
from harness.smoothing.dds import purifier_names, smooth

DTYPES = ("float32", "float16", "bfloat16")
# Stated tolerances of a reduced-precision UNet against float32, on the same inputs and noise: mean |difference|
# of the purified images ([0,1] pixel units: 0.01 = 2.55/255) and the median over methods of the mean |difference|
# of their fused maps (maps in [0,1]; explicit target, the clean prediction, so no sample changes its explained
# class). fp16 keeps 11 significant bits, bf16 8. The median, not the worst method: full LRP's maps on random
# weights move by about 0.2 under a 1e-4 change of the input in float32 alone (the worst method is reported).
TOLERANCES: dict[str, tuple[float, float]] = {"float16": (0.01, 0.02), "bfloat16": (0.04, 0.05)}
CONTROL_VARIANTS = ("identity",)
FVIT_FAMILY = (
    "fvit",
    "re",
    "denoise_only",
)  # the variants whose sigma sets the length of the UNet chain  # the negative control: no UNet, nothing to smoke-test
UNET_TIMING_STEP = 100  # original timestep of the timed UNet calls (cost does not depend on it)


@dataclass(frozen=True)
class SmokeSettings:
    """device: torch device (None: CUDA, else an error); tiny: stand-in sizes for a CPU dry run; images: images
    attacked and explained; samples: DDS m per image for every variant; radius_255: PGD L-inf radius in 1/255
    pixel units; attack_steps: PGD steps; dtypes: UNet dtypes (None: all three);
    timing_batch: images per timed UNet / ViT call (None: 16, tiny 4); repeats: timed calls per measure;
    fvit_sigma_255: sigma of fvit, re and denoise_only in 1/255 pixel units (None: their default, 4/255, 45 UNet
    calls per sample; a smaller one only shortens the chain, as the tests' dry run does)."""

    device: str | None = None
    tiny: bool = False
    images: int = 2
    samples: int = 2
    radius_255: float = 8.0
    attack_steps: int = 10
    dtypes: tuple[str, ...] | None = None
    timing_batch: int | None = None
    repeats: int = 3
    fvit_sigma_255: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("images", "samples", "repeats"):
            if getattr(self, name) < 1:
                raise ValueError(f"SmokeSettings.{name} must be >= 1, got {getattr(self, name)}")
        for d in self.dtypes or ():
            if d not in DTYPES:
                raise ValueError(f"unknown UNet dtype {d!r}; choose from {DTYPES}")


@dataclass
class SmokeResult:
    """What `run_smoke` measured; seconds are per image-call (per image for maps, PGD and purification)."""

    device: str
    world: str
    settings: SmokeSettings
    dtypes: tuple[str, ...]
    notes: list[str] = field(default_factory=list)
    unet_seconds: dict[str, float] = field(default_factory=dict)  # dtype -> s per UNet call on one image
    vit_forward_seconds: float = math.nan  # s per ViT forward of one image (unfused attention, as explainers)
    vit_forward_fused_seconds: float = math.nan  # the same with fused attention (predictions, perturbation)
    vit_backward_seconds: float = math.nan  # s per ViT backward (input gradient) of one image
    pgd_seconds: float = math.nan  # s per image of the whole PGD attack
    map_seconds: dict[str, float] = field(default_factory=dict)  # method -> s per plain map
    purify_seconds: dict[tuple[str, str], float] = field(default_factory=dict)  # (variant, dtype) -> s per image
    layout_seconds: dict[str, float] = field(default_factory=dict)  # CUDA only: UNet s per call by setting
    peak_memory_gib: float = math.nan
    peak_memory_kind: str = ""
    checks: list[dict] = field(default_factory=list)  # one per (variant, dtype)
    plan_hours: dict[str, float] = field(default_factory=dict)  # label -> GPU-hours of the paper matrix
    wall_seconds: float = math.nan

    @property
    def failures(self) -> list[str]:
        return [c["problem"] for c in self.checks if c["problem"]]


def tiny_models(
    device: str | torch.device = "cpu", seed: int = 0, image_size: int = 32
) -> tuple[ViTClassifier, Denoiser]:
    """The dry run's stand-ins, random weights, through the same wrappers as the paper models: a 2-block timm ViT
    (patch 8, width 48, `image_size` px, 10 classes) and a one-level 16 px diffusers UNet (the Denoiser resizes
    to it and back) on the paper's linear schedule."""
    from diffusers import UNet2DModel
    from timm.models.vision_transformer import VisionTransformer

    from harness.models.mini import MINI_UNET_CONFIG, MINI_VIT_NORM
    from harness.smoothing.timesteps import linear_alphas_cumprod

    torch.manual_seed(seed)
    vit = VisionTransformer(img_size=image_size, patch_size=8, embed_dim=48, depth=2, num_heads=2, num_classes=10)
    model = ViTClassifier(vit, **MINI_VIT_NORM, name="tiny-vit")
    unet = UNet2DModel(
        **{
            **MINI_UNET_CONFIG,
            "sample_size": 16,
            "block_out_channels": (16,),
            "down_block_types": ("DownBlock2D",),
            "up_block_types": ("UpBlock2D",),
            "attention_head_dim": 8,
        }
    )
    return model.to(device), Denoiser(unet, linear_alphas_cumprod(), name="tiny-unet").to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    """(seconds, result) of fn(), device synchronised before and after."""
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - start, out


def time_unet(denoiser: Denoiser, batch: int, repeats: int, device: torch.device) -> float:
    """Seconds per UNet forward of one image at the UNet's size, under inference_mode (one warm-up call)."""
    size = denoiser.sample_size
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.inference_mode():
        denoiser.predict_eps(x, UNET_TIMING_STEP)
        seconds, _ = _timed(lambda: [denoiser.predict_eps(x, UNET_TIMING_STEP) for _ in range(repeats)], device)
    return seconds / (repeats * batch)


def time_vit(model: ViTClassifier, batch: int, repeats: int, device: torch.device) -> tuple[float, float, float]:
    """Seconds per image of one ViT forward (unfused attention, as the explainers run it), one fused forward
    (predictions and perturbation curves) and one backward to the input (of the sum of the top logits)."""
    s = model.image_size
    x = torch.rand(batch, 3, s, s, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        model(x)
        forward, _ = _timed(lambda: [model(x) for _ in range(repeats)], device)
        with fused_attention(model):
            model(x)
            fused, _ = _timed(lambda: [model(x) for _ in range(repeats)], device)
    backward = 0.0
    for i in range(repeats + 1):  # the first is a warm-up
        xg = x.clone().requires_grad_(True)
        score = model(xg).max(dim=1).values.sum()
        seconds, _ = _timed(lambda score=score, xg=xg: torch.autograd.grad(score, xg), device)
        backward += seconds if i else 0.0
    n = repeats * batch
    return forward / n, fused / n, backward / n


def _layout_seconds(denoiser: Denoiser, batch: int, repeats: int, device: torch.device) -> dict[str, float]:
    """CUDA: UNet seconds per call with cudnn.benchmark off / on and channels-last / contiguous weights."""
    out: dict[str, float] = {}
    before = torch.backends.cudnn.benchmark
    try:
        for bench in (False, True):
            torch.backends.cudnn.benchmark = bench
            for layout in (torch.contiguous_format, torch.channels_last):
                denoiser.unet.to(memory_format=layout)
                tag = "channels_last" if layout == torch.channels_last else "contiguous"
                out[f"cudnn.benchmark={bench}, {tag}"] = time_unet(denoiser, batch, repeats, device)
    finally:
        torch.backends.cudnn.benchmark = before
        denoiser.unet.to(memory_format=torch.channels_last)  # the Denoiser's layout
    return out


def _masks(n: int, size: int) -> torch.Tensor:
    """Centre squares (half the side), the segmentation metrics' stand-in ground truth."""
    masks = torch.zeros(n, size, size, dtype=torch.long)
    masks[:, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1
    return masks


def _score(
    model: ViTClassifier, clean: torch.Tensor, maps: dict[str, torch.Tensor], labels: torch.Tensor, masks
) -> str:
    """Run the segmentation and perturbation metrics on each method's maps; the first problem found, or ''.
    The perturbation curves of all methods go through the model as one batch (the metric's own batching)."""
    b, _, h, w = clean.shape
    for method, m in maps.items():
        if m.shape != (b, h, w):
            return f"{method}: maps of shape {tuple(m.shape)} for images {tuple(clean.shape)}"
        if not torch.isfinite(m).all():
            return f"{method}: non-finite map values"
        for k, row in enumerate(m.cpu()):
            stats = segmentation_stats(row, masks[k])
            if not all(math.isfinite(v) for v in stats.values()):
                return f"{method}: non-finite segmentation stats {stats}"
    n = len(maps)
    images, every, targets = clean.repeat(n, 1, 1, 1), torch.cat(list(maps.values())), labels.repeat(n)
    clean_ok = clean_correctness(model, images, targets)
    for positive in (True, False):
        curve = perturbation_correctness(model, images, every, targets, positive, clean=clean_ok)
        if curve.shape != (n * b, 10) or not ((curve == 0) | (curve == 1)).all():
            return f"perturbation curves of shape {tuple(curve.shape)} or outside {{0, 1}}"
    return ""


def _fp32_weights(denoiser: Denoiser) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in denoiser.unet.state_dict().items()}


def _use_dtype(denoiser: Denoiser, weights: dict[str, torch.Tensor], dtype: str) -> None:
    """The float32 weights, then `dtype`: each dtype rounds from float32, not from the previous dtype."""
    for name, tensor in denoiser.unet.state_dict(keep_vars=True).items():
        tensor.data = weights[name].clone()
    denoiser.set_dtype(dtype)


def compare(
    dtype: str,
    purified: torch.Tensor,
    maps: dict[str, torch.Tensor],
    ref_purified: torch.Tensor,
    ref_maps: dict[str, torch.Tensor],
) -> dict:
    """A reduced-precision UNet's purified images and maps against float32's, judged by `TOLERANCES[dtype]`:
    purified_mean_abs, maps_mean_abs (median over methods), maps_worst (method, value), problem ('' = ok)."""
    tol_img, tol_map = TOLERANCES[dtype]
    out: dict = {"purified_mean_abs": float((purified - ref_purified).abs().mean())}
    diffs = {m: float((maps[m] - ref_maps[m]).abs().mean()) for m in ref_maps}
    out["maps_mean_abs"] = statistics.median(diffs.values())
    out["maps_worst"] = max(diffs.items(), key=lambda kv: kv[1])
    out["problem"] = ""
    if not out["purified_mean_abs"] <= tol_img:  # NaN fails too
        out["problem"] = f"purified images differ from float32 by {out['purified_mean_abs']:.4g} > {tol_img}"
    elif not out["maps_mean_abs"] <= tol_map:
        out["problem"] = f"maps differ from float32 by {out['maps_mean_abs']:.4g} (median method) > {tol_map}"
    return out


def run_smoke(
    settings: SmokeSettings, log: Callable[[str], None] = print, models: tuple[ViTClassifier, Denoiser] | None = None
) -> SmokeResult:
    """Run the smoke test (see the module docstring). models: prebuilt (classifier, denoiser) to use instead."""
    from harness.runner.devices import dds_batch_for, device_identity, resolve_device

    start = time.perf_counter()
    if settings.device is None and not torch.cuda.is_available():
        raise RuntimeError("no CUDA device here: pass --device cpu --tiny for the CPU dry run")
    device = resolve_device(settings.device or "cuda")
    cuda = device.type == "cuda"
    dtypes = settings.dtypes or DTYPES
    result = SmokeResult(device_identity(device), "tiny stand-ins" if settings.tiny else "paper", settings, dtypes)
    for d in DTYPES:
        if d not in dtypes:
            result.notes.append(f"UNet {d}: not asked for (--dtypes), not run")
    if not cuda:
        result.notes.append(
            f"on {device.type} the UNet dtypes run through the same casts as on CUDA, with the CPU's kernels: "
            "their agreement says nothing of CUDA's fp16/bf16 numerics (overflow, TF32), only a GPU run does"
        )
        result.notes.append("cudnn.benchmark and channels-last vs contiguous UNet timings: measured on CUDA only")
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    if models is None:
        if settings.tiny:
            models = tiny_models(device, settings.seed)
        else:
            from harness.cost.timing import paper_architecture_models

            models = paper_architecture_models(device)
    model, denoiser = models
    world = f"{model.name} ({model.image_size} px) + {denoiser.name} ({denoiser.sample_size} px)"
    log(f"gpu smoke: {world} on {result.device}; UNet dtypes {', '.join(dtypes)}")
    for note in result.notes:
        log(f"  note: {note}")
    batch = settings.timing_batch or (4 if settings.tiny else 16)
    dds_batch = dds_batch_for(device, denoiser.sample_size)
    weights = _fp32_weights(denoiser)

    s = model.image_size
    gen = torch.Generator().manual_seed(settings.seed)
    clean = torch.rand(settings.images, 3, s, s, generator=gen).to(device)
    masks = _masks(settings.images, s)
    with torch.no_grad():
        labels = model(clean).argmax(1)
    result.vit_forward_seconds, result.vit_forward_fused_seconds, result.vit_backward_seconds = time_vit(
        model, batch, settings.repeats, device
    )
    pgd = lambda: pgd_linf(model, clean, settings.radius_255 / 255, steps=settings.attack_steps, seed=settings.seed)  # noqa: E731
    pgd()  # warm-up
    seconds, adv = _timed(pgd, device)
    result.pgd_seconds = seconds / settings.images
    methods = names()
    plain = {}
    for method in methods:
        explainer = get_explainer(method)
        explainer(model, adv[:1])  # warm-up
        seconds, plain[method] = _timed(lambda explainer=explainer: explainer(model, adv), device)
        result.map_seconds[method] = seconds / settings.images
    problem = _score(model, clean, plain, labels, masks)
    result.checks.append({"variant": "none (plain maps)", "dtype": "-", "problem": problem})
    log(f"  PGD and {len(methods)} plain maps done; ViT forward {result.vit_forward_seconds * 1e3:.3f} ms/image")

    variants = [v for v in purifier_names() if v not in CONTROL_VARIANTS]
    reference: dict[str, tuple[torch.Tensor, dict[str, torch.Tensor]]] = {}
    for dtype in dtypes:
        _use_dtype(denoiser, weights, dtype)
        try:
            result.unet_seconds[dtype] = time_unet(denoiser, batch, settings.repeats, device)
        except (RuntimeError, NotImplementedError) as err:  # e.g. a kernel this device lacks in this dtype
            if dtype == "float32":
                raise
            result.notes.append(f"UNet {dtype}: not run on {device.type}: {str(err).splitlines()[0]}")
            log(f"  note: {result.notes[-1]}")
            continue
        if cuda and dtype == dtypes[-1]:
            result.layout_seconds = _layout_seconds(denoiser, batch, settings.repeats, device)
        for variant in variants:
            base = smooth(
                get_explainer(methods[0]),
                denoiser,
                variant,
                samples=settings.samples,
                sigma=None
                if settings.fvit_sigma_255 is None or variant not in FVIT_FAMILY
                else settings.fvit_sigma_255 / 255,
                seed=settings.seed,
                max_batch=dds_batch,
            )
            seconds, purified = _timed(lambda base=base: base.purify(adv), device)
            result.purify_seconds[(variant, dtype)] = seconds / settings.images
            maps_by_method = {}
            problem = "" if torch.isfinite(purified).all() else "non-finite purified images"
            for method in methods:
                smoothed = dataclasses.replace(base, explainer=get_explainer(method))
                maps = smoothed.explain_purified(model, purified, labels)
                maps_by_method[method] = maps
            problem = problem or _score(model, clean, maps_by_method, labels, masks)
            check = {"variant": variant, "dtype": dtype, "purified_mean_abs": math.nan, "maps_mean_abs": math.nan}
            if dtype == "float32":
                reference[variant] = (purified, maps_by_method)
            elif variant in reference and not problem:
                check.update(compare(dtype, purified, maps_by_method, *reference[variant]))
                problem = check["problem"]
            check["problem"] = f"{variant} ({dtype} UNet): {problem}" if problem else ""
            result.checks.append(check)
        log(f"  UNet {dtype}: {result.unet_seconds[dtype] * 1e3:.3f} ms/call; {len(variants)} DDS variants done")
    _use_dtype(denoiser, weights, "float32")

    if cuda:
        result.peak_memory_gib = torch.cuda.max_memory_allocated(device) / 2**30
        result.peak_memory_kind = "torch.cuda.max_memory_allocated"
    else:
        result.peak_memory_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
        result.peak_memory_kind = "peak resident memory of the process (ru_maxrss)"
    result.plan_hours = plan_hours(result)
    result.wall_seconds = time.perf_counter() - start
    return result


def plan_hours(result: SmokeResult) -> dict[str, float]:
    """GPU-hours of the paper matrix (`fvit-bench cost --plan`'s configs) at the assumed per-call seconds and
    at the measured ones, one entry per measured UNet dtype (the ViT numbers are float32 in every entry)."""
    from harness.cost.plan import call_times, paper_plan_paths, plan_table
    from harness.runner.config import load_config

    configs = [load_config(p) for p in paper_plan_paths()]
    out = {"assumed (FLOP rates)": float(plan_table(configs, times=call_times()).iloc[-1]["gpu_hours"])}
    for dtype, unet in result.unet_seconds.items():
        times = call_times(unet, result.vit_forward_seconds, result.vit_backward_seconds)
        out[f"measured, {dtype} UNet"] = float(plan_table(configs, times=times).iloc[-1]["gpu_hours"])
    return out


def plan_command(result: SmokeResult, dtype: str) -> str:
    """The `fvit-bench cost --plan` command line that these measurements feed."""
    return (
        f"fvit-bench cost --plan --unet-seconds {result.unet_seconds[dtype]:.6g} "
        f"--vit-seconds {result.vit_forward_seconds:.6g} --vit-backward-seconds {result.vit_backward_seconds:.6g}"
    )


def report_lines(result: SmokeResult) -> list[str]:
    """gpu.md's lines (markdown): settings, measured seconds, checks, the plan recomputed, what is assumed."""
    st = result.settings
    ms = lambda seconds: f"{seconds * 1e3:.4g}"  # noqa: E731
    lines = [
        f"# GPU smoke run ({result.world})",
        "",
        f"- Device: {result.device}; torch {torch.__version__}; wall time {result.wall_seconds:.1f} s.",
        f"- {st.images} random images, PGD L-inf {st.radius_255:g}/255 ({st.attack_steps} step(s)); "
        f"DDS m = {st.samples} per image for every variant at its default sigma{_sigma_note(st)}; "
        f"{len(result.map_seconds)} explainers; random weights.",
        f"- Timed calls: batches of {st.timing_batch or (4 if st.tiny else 16)} images, {st.repeats} timed call(s) per "
        "measure after one warm-up call, device synchronised; every time below is per image.",
        *(f"- Note: {n}" for n in result.notes),
        "",
        "## Seconds per call (measured)",
        "",
        "| call | ms per image |",
        "|---|---|",
        *(f"| UNet forward, {d} | {ms(v)} |" for d, v in result.unet_seconds.items()),
        f"| ViT forward (unfused attention, as the explainers) | {ms(result.vit_forward_seconds)} |",
        f"| ViT forward (fused attention: predictions, perturbation curves) | {ms(result.vit_forward_fused_seconds)} |",
        f"| ViT backward (input gradient) | {ms(result.vit_backward_seconds)} |",
        f"| PGD attack, whole ({st.attack_steps} step(s)) | {ms(result.pgd_seconds)} |",
        *(f"| map: {m} (plain) | {ms(v)} |" for m, v in result.map_seconds.items()),
        *(
            f"| DDS purification: {v}, {d} UNet (m = {st.samples}) | {ms(s)} |"
            for (v, d), s in result.purify_seconds.items()
        ),
        *(f"| UNet forward, last dtype, {k} | {ms(v)} |" for k, v in result.layout_seconds.items()),
        "",
        f"Peak memory: {result.peak_memory_gib:.3f} GiB ({result.peak_memory_kind}).",
        "",
        "## Checks",
        "",
        "Every map finite, (B, H, W), scored by the segmentation and perturbation metrics; each reduced-precision "
        "UNet against float32 (mean |difference|; purified images in [0,1] pixel units, maps in [0,1], median over "
        f"methods; tolerances {', '.join(f'{d}: {a} / {b}' for d, (a, b) in TOLERANCES.items())}).",
        "",
        "| DDS variant | UNet dtype | purified mean abs diff | maps mean abs diff (median method) | worst method "
        "| result |",
        "|---|---|---|---|---|---|",
        *(
            f"| {c['variant']} | {c['dtype']} | {_diff(c.get('purified_mean_abs'))} | "
            f"{_diff(c.get('maps_mean_abs'))} | {_worst(c.get('maps_worst'))} | {c['problem'] or 'ok'} |"
            for c in result.checks
        ),
        "",
        "## The paper matrix's cost plan, recomputed",
        "",
        "| per-call seconds | GPU-hours |",
        "|---|---|",
        *(f"| {k} | {v:.2f} |" for k, v in result.plan_hours.items()),
        "",
        "Measured here: the seconds per UNet call, ViT forward and backward above (ViT forward: the unfused one, an "
        "upper bound of the fused forwards the perturbation curves use). Assumed: the call counts' model of a run "
        "(`harness.cost.plan`), the dataset sizes, and in the `assumed` row the FLOP rates (1.1 TFLOP per UNet call, "
        "17.6 GFLOP per ViT forward, backward 2 x forward, 300 TFLOP/s). The shipped paper configs run the UNet in "
        "float32 unless `denoiser_dtype` is set. The same numbers as a command:",
        "",
        *(f"    {plan_command(result, d)}  # {d} UNet" for d in result.unet_seconds),
    ]
    if result.world != "paper":
        lines += [
            "",
            "Tiny stand-in models: these seconds are not ViT-B/16's nor ADM-256's; the plan rows are not "
            "the paper's cost (run without --tiny on a GPU for those).",
        ]
    return lines


def _sigma_note(st: SmokeSettings) -> str:
    if st.fvit_sigma_255 is None:
        return ""
    return f" (fvit, re, denoise_only: {st.fvit_sigma_255:g}/255, a shorter chain than their default)"


def _diff(value: float | None) -> str:
    if value is None:
        return "-"
    return "reference" if math.isnan(value) else f"{value:.3g}"


def _worst(pair: tuple[str, float] | None) -> str:
    return "-" if pair is None else f"{pair[0]} {pair[1]:.3g}"


def write_report(result: SmokeResult, out_dir: str | Path) -> Path:
    """Write gpu.md (gpu_tiny.md for the tiny stand-ins) to `out_dir`; returns its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / ("gpu.md" if result.world == "paper" else "gpu_tiny.md")
    path.write_text("\n".join(report_lines(result)) + "\n")
    return path


def build_parser() -> argparse.ArgumentParser:
    """The options of `python -m harness.cost.gpu_smoke` (and `scripts/gpu_smoke.sh`)."""
    parser = argparse.ArgumentParser(prog="gpu_smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="torch device (default cuda; cpu for the dry run)")
    parser.add_argument("--tiny", action="store_true", help="small stand-in models (the CPU dry run)")
    parser.add_argument("--dtypes", default=None, help="UNet dtypes, comma-separated (default: all three)")
    parser.add_argument("--images", type=int, default=2, help="images attacked and explained (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measure (default 3)")
    parser.add_argument("--samples", type=int, default=2, help="DDS samples m per image, every variant (default 2)")
    parser.add_argument("--attack-steps", type=int, default=10, help="PGD steps (default 10)")
    parser.add_argument(
        "--fvit-sigma",
        type=float,
        default=None,
        help="sigma of fvit/re/denoise_only in 1/255 pixel units (default: theirs, 4; smaller = a shorter chain)",
    )
    parser.add_argument("--out", default="reports/bench", help="folder of gpu.md (default reports/bench)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        settings = SmokeSettings(
            device=args.device,
            tiny=args.tiny,
            images=args.images,
            repeats=args.repeats,
            samples=args.samples,
            attack_steps=args.attack_steps,
            fvit_sigma_255=args.fvit_sigma,
            dtypes=tuple(d.strip() for d in args.dtypes.split(",")) if args.dtypes else None,
        )
        result = run_smoke(settings)
    except (RuntimeError, ValueError) as err:
        print(f"gpu_smoke: error: {err}", file=sys.stderr)
        return 2
    path = write_report(result, args.out)
    print("\n".join(report_lines(result)))
    print(f"wrote {path}")
    if result.failures:
        print("gpu_smoke: FAILED: " + "; ".join(result.failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
