"""Diffusion Denoised Smoothing around any explainer: a smoothed explainer is again an explainer.

Each variant is a *purifier* ``purify(denoiser, images, sigma, generator) -> images``: it maps the
m replicated copies of each input (all in [0,1] pixel space) to the images that get explained.
Every copy is purified independently, so the m samples of a batch go through the denoiser and the
explainer as one batch. `SmoothedExplainer` replicates, purifies and explains in batches, then fuses
the m maps per image. Purifiers follow the ambient autograd mode (`SmoothedExplainer` runs them
under no_grad; `harness.attacks.adaptive` differentiates through them).

Noise levels `sigma` are pixel-space standard deviations (images in [0,1]) for every variant.
FViT/Re define delta in [-1,1] space; `harness.smoothing.timesteps.model_space_std` converts
(pixel sigma = delta / 2, so their delta = 8/255 is sigma = 4/255 here). See docs/PROTOCOL.md section 4.

Variants: carlini (one-shot), fvit, re, the fvit-pipeline ablations noise_only and denoise_only, the
negative control identity and the positive control oracle (the clean image: the best any purifier can do;
it needs the clean batch, `clean=`, which the runner passes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Generator, Tensor

from harness.explainers.registry import Explainer, normalise_maps, resolve_target
from harness.models.classifier import ViTClassifier, fused_attention
from harness.models.denoiser import Denoiser
from harness.smoothing.fusion import get_fusion, uses_raw_maps

Purifier = Callable[[Denoiser | None, torch.Tensor, float, torch.Generator], torch.Tensor]
UnetCalls = Callable[[Denoiser | None, float], int]

# FViT/Re's delta = 8/255 in [-1,1] space, in pixel units (see `model_space_std`).
FVIT_DEFAULT_SIGMA = 4 / 255
# Which class a sample explains when no target is given (see `SmoothedExplainer`).
SAMPLE_TARGETS = ("own", "input")
# Re's sample counts: the explainer cannot know whether its input was attacked, so the caller picks
# (`re_samples`). Re's segmentation script uses m = 10 on clean and 2 on attacked inputs; its
# perturbation script uses 2 on both. (One stored version of Re's DDS.py has m = 5 and explains ONE
# denoised image m times; the protocol's counts, each sample purified afresh, are what runs here.)
RE_SAMPLES_CLEAN, RE_SAMPLES_ATTACKED = 10, 2
RE_SAMPLES = {
    ("segmentation", False): RE_SAMPLES_CLEAN,
    ("segmentation", True): RE_SAMPLES_ATTACKED,
    ("perturbation", False): RE_SAMPLES_ATTACKED,
    ("perturbation", True): RE_SAMPLES_ATTACKED,
}


def re_samples(task: str, attacked: bool) -> int:
    """Re's m for `task` ("segmentation" or "perturbation") on an attacked or clean input."""
    try:
        return RE_SAMPLES[(task, bool(attacked))]
    except KeyError:
        raise ValueError(f"unknown task {task!r} for Re's sample count; choose segmentation or perturbation") from None


@dataclass(frozen=True)
class Variant:
    """A DDS variant: its purifier, defaults, and the UNet calls one sample costs at a noise level.

    unet_calls(denoiser, sigma) also validates sigma for the variant (raises ValueError). deterministic:
    the purifier draws no noise, so every copy of an image is purified alike (an expectation over its
    noise is one sample). needs_clean: the purifier is given the copies of the clean (unattacked) image
    instead of the input's (the oracle).
    """

    name: str
    purify: Purifier
    needs_denoiser: bool
    default_samples: int
    default_fusion: str
    description: str
    default_sigma: float = 0.12
    unet_calls: UnetCalls = lambda denoiser, sigma: 0
    deterministic: bool = False
    needs_clean: bool = False


VARIANTS: dict[str, Variant] = {}


def register_variant(
    name: str,
    *,
    needs_denoiser: bool,
    default_samples: int,
    default_fusion: str,
    description: str,
    default_sigma: float = 0.12,
    unet_calls: UnetCalls | None = None,
    deterministic: bool = False,
    needs_clean: bool = False,
) -> Callable[[Purifier], Purifier]:
    """Decorator: register purifier `fn` as DDS variant `name` (sigma defaults in pixel units)."""

    def deco(fn: Purifier) -> Purifier:
        calls = unet_calls or (lambda denoiser, sigma: 0)
        VARIANTS[name] = Variant(
            name,
            fn,
            needs_denoiser,
            default_samples,
            default_fusion,
            description,
            default_sigma,
            calls,
            deterministic,
            needs_clean,
        )
        return fn

    return deco


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise KeyError(f"unknown DDS variant {name!r}; choose from {sorted(VARIANTS)}") from None


def purifier_names() -> list[str]:
    """The variants that purify their input alone (every one but a needs_clean control: the oracle), in
    registration order: the DDS grid of cost tables and benchmarks."""
    return [name for name, spec in VARIANTS.items() if not spec.needs_clean]


def gaussian_like(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)


def _require(denoiser: Denoiser | None, variant: str) -> Denoiser:
    if denoiser is None:
        raise ValueError(f"DDS variant {variant!r} needs a denoiser; got None")
    return denoiser


def _fvit_calls(denoiser: Denoiser | None, sigma: float) -> int:
    return _require(denoiser, "fvit").fvit_num_steps(sigma)


@register_variant(
    "carlini",
    needs_denoiser=True,
    default_samples=8,
    default_fusion="mean",
    default_sigma=0.12,
    unet_calls=lambda denoiser, sigma: 1,
    description="Carlini et al. one-shot: x + sigma*eps (sigma in [0,1] pixel units, drawn at the UNet's "
    "resolution), one UNet call at t*(sigma), explain x0_hat.",
)
def purify_carlini(denoiser: Denoiser | None, images: Tensor, sigma: float, gen: Generator) -> Tensor:
    return _require(denoiser, "carlini").carlini_denoise(images, sigma, gen)


@register_variant(
    "fvit",
    needs_denoiser=True,
    default_samples=2,
    default_fusion="drop_low_max",
    default_sigma=FVIT_DEFAULT_SIGMA,
    unet_calls=_fvit_calls,
    description="FViT: multi-step ancestral denoise (250-respaced chain, per-step-beta rule), then add "
    "N(0, sigma^2) (sigma in [0,1] pixel units), clamp; trial_num = 2; drop lowest 10% then max.",
)
def purify_fvit(denoiser: Denoiser | None, images: Tensor, sigma: float, gen: Generator) -> Tensor:
    denoised = _require(denoiser, "fvit").fvit_denoise(images, sigma, gen, clip=False)
    return (denoised + sigma * gaussian_like(images, gen)).clamp(0.0, 1.0)


@register_variant(
    "re",
    needs_denoiser=True,
    default_samples=RE_SAMPLES_CLEAN,
    default_fusion="raw_mean",
    default_sigma=FVIT_DEFAULT_SIGMA,
    unet_calls=_fvit_calls,
    description="Re: add N(0, sigma^2), then FViT's denoise (which adds noise again), clamp; fusion: mean of "
    f"the m raw maps, then one min-max normalisation. Re uses m = {RE_SAMPLES_CLEAN} on clean and "
    f"{RE_SAMPLES_ATTACKED} on attacked inputs in segmentation, {RE_SAMPLES_ATTACKED} on both in the "
    "perturbation test: pass samples (`re_samples`).",
)
def purify_re(denoiser: Denoiser | None, images: Tensor, sigma: float, gen: Generator) -> Tensor:
    return _require(denoiser, "re").fvit_denoise(images + sigma * gaussian_like(images, gen), sigma, gen)


@register_variant(
    "noise_only",
    needs_denoiser=False,
    default_samples=2,
    default_fusion="drop_low_max",
    default_sigma=FVIT_DEFAULT_SIGMA,
    description="Ablation of fvit without the denoiser: add N(0, sigma^2), clamp.",
)
def purify_noise_only(denoiser: Denoiser | None, images: Tensor, sigma: float, gen: Generator) -> Tensor:
    return (images + sigma * gaussian_like(images, gen)).clamp(0.0, 1.0)


@register_variant(
    "denoise_only",
    needs_denoiser=True,
    default_samples=2,
    default_fusion="drop_low_max",
    default_sigma=FVIT_DEFAULT_SIGMA,
    unet_calls=_fvit_calls,
    description="FViT's 'only denoise' ablation: FViT's denoise unchanged (it adds its N(0, delta^2) noise "
    "and runs the rule's ancestral steps), clamp; only the noise fvit adds AFTER denoising is dropped.",
)
def purify_denoise_only(denoiser: Denoiser | None, images: Tensor, sigma: float, gen: Generator) -> Tensor:
    return _require(denoiser, "denoise_only").fvit_denoise(images, sigma, gen)


@register_variant(
    "identity",
    needs_denoiser=False,
    default_samples=1,
    default_fusion="mean",
    deterministic=True,
    description="Negative control: the input unchanged (no noise, no denoiser; sigma is ignored), m = 1. "
    "A claim that this 'DDS' also passes cannot tell a real DDS from a fake one.",
)
def purify_identity(denoiser: Denoiser | None, images: Tensor, sigma: float, gen: Generator) -> Tensor:
    return images.clone()


@register_variant(
    "oracle",
    needs_denoiser=False,
    default_samples=1,
    default_fusion="mean",
    deterministic=True,
    needs_clean=True,
    description="Positive control: the clean (unattacked) image, whatever the input (sigma is ignored), m = 1: "
    "the best any purifier can do. A robustness claim it does not hold cannot be passed by any DDS.",
)
def purify_oracle(denoiser: Denoiser | None, images: Tensor, sigma: float, gen: Generator) -> Tensor:
    return images.clone()  # `SmoothedExplainer.purify` hands a needs_clean variant the clean copies


def check_sigma(sigma: float) -> float:
    """Pixel-space noise levels live in (0, 1]; anything else is almost surely a unit mistake."""
    sigma = float(sigma)
    if not (0.0 < sigma <= 1.0):
        raise ValueError(
            f"DDS noise level sigma={sigma} is out of range: it is a standard deviation in [0,1] pixel units "
            "(e.g. 0.12 or 16/255), and must lie in (0, 1]"
        )
    return sigma


@dataclass(frozen=True)
class SmoothedExplainer:
    """`explainer` wrapped by DDS `variant`: explain each of `samples` purified copies, then fuse.

    sigma: pixel-space noise std (None = the variant's default: 0.12 for carlini, 4/255 for the
    fvit family, i.e. FViT/Re's delta = 8/255 in [-1,1] space); samples: m per image (None = the
    variant's default; for `re` pass `re_samples(task, attacked)`); fusion: name in
    `harness.smoothing.fusion.FUSIONS` (None = the variant's default; `raw_mean` fuses the explainer's
    raw maps, so the explainer needs a `raw` method, as registered explainers have); seed: seeds the noise, so a
    call is deterministic for a given batch; max_batch: images per explainer/denoiser batch.

    target=None: with sample_target="own" (the default) each purified sample explains the class the
    model predicts on *that sample*, as Chefer's, FViT's and Re's code do (they call the explainer on
    each denoised image with index=None); with sample_target="input" every sample explains the class
    predicted on the input image. An explicit target is explained by every sample.
    """

    explainer: Explainer
    denoiser: Denoiser | None
    variant: str = "carlini"
    sigma: float | None = None
    samples: int | None = None
    fusion: str | None = None
    seed: int = 0
    max_batch: int = 64
    sample_target: str = "own"
    spec: Variant = field(init=False, repr=False)

    def __post_init__(self) -> None:
        spec = get_variant(self.variant)
        object.__setattr__(self, "spec", spec)
        sigma = spec.default_sigma if self.sigma is None else self.sigma
        object.__setattr__(self, "sigma", check_sigma(sigma))
        if spec.needs_denoiser and self.denoiser is None:
            raise ValueError(f"DDS variant {self.variant!r} needs a denoiser; got None")
        if self.n_samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.n_samples}")
        get_fusion(self.fusion_name)
        self._sample_explainer()  # a fusion of raw maps needs an explainer that gives them
        if self.sample_target not in SAMPLE_TARGETS:
            raise ValueError(f"sample_target must be one of {SAMPLE_TARGETS}, got {self.sample_target!r}")
        self.unet_calls_per_sample  # validates sigma for the variant  # noqa: B018

    @property
    def n_samples(self) -> int:
        return self.spec.default_samples if self.samples is None else int(self.samples)

    @property
    def fusion_name(self) -> str:
        return self.spec.default_fusion if self.fusion is None else self.fusion

    @property
    def unet_calls_per_sample(self) -> int:
        """UNet forward calls one sample costs (carlini 1; fvit/re/denoise_only the rule's steps)."""
        return self.spec.unet_calls(self.denoiser, self.sigma)

    @property
    def label(self) -> str:
        base = getattr(self.explainer, "label", getattr(self.explainer, "__name__", "explainer"))
        return f"{base}+dds[{self.variant}]"

    def purify(self, images: torch.Tensor, clean: torch.Tensor | None = None) -> torch.Tensor:
        """The m purified copies of each image, (B*m, 3, H, W) in image-major order; seeded by `seed`.

        Depends only on the images and the DDS settings, not on the explainer, so a caller that
        explains the same images with several methods can purify once (see `explain_purified`).
        clean: the unattacked images (same shape), which a needs_clean variant (the oracle) purifies
        instead; required for it, ignored by the others.
        """
        if self.spec.needs_clean:
            if clean is None or clean.shape != images.shape:
                got = "none" if clean is None else tuple(clean.shape)
                raise ValueError(
                    f"DDS variant {self.variant!r} returns the clean image: pass clean= (the unattacked images, "
                    f"shape {tuple(images.shape)}); got {got}"
                )
            images = clean
        return self.purify_copies(images.repeat_interleave(self.n_samples, dim=0))

    def purify_copies(self, copies: torch.Tensor) -> torch.Tensor:
        """Purify each of `copies` (B*m, 3, H, W) once, in order; seeded by `seed`. `purify` passes m
        replicas of each image; a caller may pass m different inputs per image (e.g. one attack per trial,
        as FViT's notebook), image-major."""
        if copies.shape[0] % self.n_samples:
            raise ValueError(f"{copies.shape[0]} copies is not a multiple of samples={self.n_samples}")
        gen = torch.Generator(device=copies.device).manual_seed(self.seed)
        with torch.no_grad():
            return torch.cat(
                [
                    self.spec.purify(self.denoiser, copies[i : i + self.max_batch], self.sigma, gen)
                    for i in range(0, copies.shape[0], self.max_batch)
                ]
            )

    def explain_purified(
        self, model: ViTClassifier, purified: torch.Tensor, target: torch.Tensor | None
    ) -> torch.Tensor:
        """Explain `purify`'s output and fuse the m maps per image. target: per-image classes (B,),
        per-sample classes (B*m,), or None for each sample's own predicted class (`predicted_classes`)."""
        m = self.n_samples
        n = purified.shape[0]
        if n % m or (target is not None and target.shape[0] not in (n, n // m)):
            got = "None" if target is None else target.shape[0]
            raise ValueError(f"{n} purified images ({m} samples per image) for {got} targets")
        if target is None:
            rep_target = self.predicted_classes(model, purified)
        elif target.shape[0] == n:
            rep_target = target
        else:
            rep_target = target.repeat_interleave(m, dim=0)
        explain = self._sample_explainer()
        maps = [
            explain(model, purified[i : i + self.max_batch], rep_target[i : i + self.max_batch])
            for i in range(0, purified.shape[0], self.max_batch)
        ]
        stacked = torch.cat(maps).view(purified.shape[0] // m, m, *maps[0].shape[1:])
        return normalise_maps(get_fusion(self.fusion_name)(stacked))

    def _sample_explainer(self) -> Explainer:
        """What explains each sample: the explainer's raw maps for a fusion of raw maps, else its maps."""
        if not uses_raw_maps(self.fusion_name):
            return self.explainer
        raw = getattr(self.explainer, "raw", None)
        if raw is None:
            raise ValueError(
                f"fusion {self.fusion_name!r} averages raw (unnormalised) maps, but {self.label} has no `raw` "
                "method (registered explainers do: use get_explainer); pass fusion='mean' to average its "
                "normalised maps instead"
            )
        return raw

    def predicted_classes(self, model: ViTClassifier, purified: torch.Tensor) -> torch.Tensor:
        """The class the model predicts on each purified sample, (B*m,)."""
        with torch.no_grad(), fused_attention(model):  # nothing reads the attention of these forwards
            return torch.cat(
                [model(purified[i : i + self.max_batch]).argmax(1) for i in range(0, purified.shape[0], self.max_batch)]
            )

    def __call__(
        self,
        model: ViTClassifier,
        images: torch.Tensor,
        target: torch.Tensor | int | None = None,
        clean: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Fused maps of `images`; clean: the unattacked images, for a needs_clean variant (the oracle)."""
        model.check_images(images)
        if target is not None or self.sample_target == "input":
            target = resolve_target(model, images, target)
        return self.explain_purified(model, self.purify(images, clean), target)


def smooth(explainer: Explainer, denoiser: Denoiser | None, variant: str = "carlini", **options) -> SmoothedExplainer:
    """Wrap `explainer` with DDS `variant` (see `SmoothedExplainer` for the options)."""
    return SmoothedExplainer(explainer, denoiser, variant, **options)
