"""Paper-scale claims: what each needs on disk, and the experiment that measures a group of them.

Nothing is downloaded: weights, data and the converted diffusion model come from local paths
named by environment variables (or config fields), and a claim whose inputs are missing is
skipped with the exact variable, file and source it needs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from harness.claims.build import COST_DATASET
from harness.claims.registry import Claim
from harness.data import imagenet_seg, imagenet_val
from harness.models.zoo import PAPER_MODELS
from harness.runner.config import DDSSpec, ExperimentConfig

ADM_ENV = "FVIT_ADM_DIR"
ADM_SOURCE = (
    "a diffusers folder converted from guided-diffusion's 256x256_diffusion_uncond.pt "
    "(https://openaipublic.blob.core.windows.net/diffusion/jul-2021/256x256_diffusion_uncond.pt) "
    "with `fvit-bench convert-adm`"
)
# The dataset each reported number's sample is run on. Re's 4,000-image values: Re's own 8% seed-44
# subset (`harness.data.re_subset`). Re's 760-image run records no image list: it runs on full ImageNet
# val, a departure its claims' `sample` field states.
DATASET_OF = {
    "imagenet-seg": "imagenet-seg",
    "imagenet-val": "imagenet-val",
    "imagenet-val-760": "imagenet-val",
    "imagenet-val-4000": "imagenet-val-re8",
}


def _missing_file(env: str, what: str, source: str, is_dir: bool = False) -> str | None:
    value = os.environ.get(env, "").strip()
    if not value:
        return f"{what}: set {env} to {source}"
    path = Path(value)
    if not (path.is_dir() if is_dir else path.is_file()):
        return f"{what}: {env}={value} does not exist; it should be {source}"
    return None


def missing_inputs(claim: Claim) -> list[str]:
    """Human-readable list of what this paper claim needs and is absent (empty = runnable)."""
    if claim.dataset == COST_DATASET:  # cost: the paper architectures with random weights, on a GPU
        import torch

        if torch.cuda.is_available():
            return []
        return ["a CUDA device: paper-architecture cost (ViT-B/16 + ADM-256, random weights) is measured on a GPU"]
    missing = []
    if claim.model in PAPER_MODELS:
        _, env, source = PAPER_MODELS[claim.model]
        missing.append(_missing_file(env, f"{claim.model} weights", source))
    dataset = DATASET_OF.get(claim.dataset, claim.dataset)
    if dataset == "imagenet-seg":
        missing.append(
            _missing_file(
                imagenet_seg.ENV_VAR,
                "ImageNet-Segmentation",
                "gtsegs_ijcv.mat (http://calvin-vision.net/bigstuff/proj-imagenet/data/gtsegs_ijcv.mat)",
            )
        )
    elif dataset in ("imagenet-val", "imagenet-val-re8"):
        missing.append(
            _missing_file(
                imagenet_val.ENV_VAR,
                "ImageNet val",
                "the ILSVRC2012 validation folder (image-net.org; 50,000 images + devkit)",
                is_dir=True,
            )
        )
    if claim.dds != "none":  # plain claims run in an experiment without DDS: no denoiser needed
        missing.append(_missing_file(ADM_ENV, "ADM-256 denoiser", ADM_SOURCE, is_dir=True))
    return [m for m in missing if m]


LIMIT_ENV = "FVIT_CLAIMS_LIMIT"  # smoke run: only the first N images of each paper experiment
SIGMA_ENV = "FVIT_CLAIMS_DDS_SIGMA"  # smoke run: every DDS variant's noise std, [0,1] pixel units


def smoke_settings() -> dict:
    """The smoke-run overrides set in the environment ({} for a paper run): limit and/or dds_sigma."""
    out: dict = {}
    for env, key, cast in ((LIMIT_ENV, "limit", int), (SIGMA_ENV, "dds_sigma", float)):
        value = os.environ.get(env, "").strip()
        if value:
            try:
                out[key] = cast(value)
            except ValueError:
                raise ValueError(f"{env}={value!r} is not a {cast.__name__}") from None
    if out.get("limit") is not None and out["limit"] < 1:
        raise ValueError(f"{LIMIT_ENV} must be >= 1, got {out['limit']}")
    return out


def smoke_note(settings: dict) -> str:
    """One line stating a smoke run's overrides ('' for a paper run)."""
    if not settings:
        return ""
    parts = []
    if "limit" in settings:
        parts.append(f"only the first {settings['limit']} image(s) of each dataset (${LIMIT_ENV})")
    if "dds_sigma" in settings:
        sigma = settings["dds_sigma"]
        parts.append(
            f"DDS sigma {sigma:.4f} in [0,1] pixel units ({sigma * 255:.2f}/255) for every variant (${SIGMA_ENV})"
        )
    return "SMOKE RUN, not the papers' protocol: paper claims measured on " + "; ".join(parts) + "."


def group_of(claim: Claim) -> tuple[str, str, str]:
    """The experiment a paper claim is measured in: (model, dataset, DDS variant or 'none').

    One experiment per DDS variant (each also holds the plain rows it is compared with), and one plain
    experiment per dataset, so a claim without DDS needs no denoiser."""
    return claim.model, DATASET_OF.get(claim.dataset, claim.dataset), claim.dds


def paper_groups(claims: Iterable[Claim]) -> list[tuple[str, str, str]]:
    return sorted({group_of(c) for c in claims if c.dataset != COST_DATASET})


def paper_config(
    claims: Iterable[Claim], group: tuple[str, str, str], limit: int | None = None, dds_sigma: float | None = None
) -> ExperimentConfig:
    """The experiment of `group` (see `group_of`): the methods, radii and explained classes its claims need,
    radius 0 always (the clean maps of the top-k overlap); each DDS variant at its paper defaults unless
    `dds_sigma` (a smoke run) overrides sigma. `limit`: the first images only (None = all)."""
    model, dataset, dds = group
    claims = [c for c in claims if c.dataset != COST_DATASET and group_of(c) == group]
    if not claims:
        raise ValueError(f"no paper claim is measured in experiment {group}")
    methods = sorted({c.method for c in claims if c.method != "none"})
    radii = sorted({0.0} | {c.radius_255 for c in claims})
    tasks = ("segmentation",) if dataset == "imagenet-seg" else ("perturbation",)  # imagenet-val(-re8)
    explain = tuple(sorted({"target" if c.metric.endswith("_target") else "pred" for c in claims}))
    return ExperimentConfig(
        name=f"paper-{model}-{dataset}-{dds}",
        model=model,
        dataset=dataset,
        denoiser=(os.environ.get(ADM_ENV) or None) if dds != "none" else None,
        methods=tuple(methods),
        dds=() if dds == "none" else (DDSSpec(dds, sigma=dds_sigma),),  # sigma None: the variant's paper default
        radii_255=tuple(radii),
        tasks=tasks,
        explain_classes=explain or ("pred",),
        limit=limit,
        batch_size=8,
    )
