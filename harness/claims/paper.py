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
DATASET_OF = {"imagenet-seg": "imagenet-seg", "imagenet-val": "imagenet-val",
              "imagenet-val-760": "imagenet-val", "imagenet-val-4000": "imagenet-val-re8"}


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
        missing.append(_missing_file(imagenet_seg.ENV_VAR, "ImageNet-Segmentation", "gtsegs_ijcv.mat "
                                     "(http://calvin-vision.net/bigstuff/proj-imagenet/data/gtsegs_ijcv.mat)"))
    elif dataset in ("imagenet-val", "imagenet-val-re8"):
        missing.append(_missing_file(imagenet_val.ENV_VAR, "ImageNet val", "the ILSVRC2012 validation folder "
                                     "(image-net.org; 50,000 images + devkit)", is_dir=True))
    if claim.dds != "none":
        missing.append(_missing_file(ADM_ENV, "ADM-256 denoiser", ADM_SOURCE, is_dir=True))
    return [m for m in missing if m]


def paper_config(claims: Iterable[Claim], dataset: str) -> ExperimentConfig:
    """One experiment covering every paper claim on `dataset` (methods, variants, radii they need)."""
    claims = [c for c in claims if DATASET_OF.get(c.dataset, c.dataset) == dataset]
    methods = sorted({c.method for c in claims if c.method != "none"})
    variants = sorted({c.dds for c in claims if c.dds != "none"})
    radii = sorted({0.0} | {c.radius_255 for c in claims})
    tasks = ("segmentation",) if dataset == "imagenet-seg" else ("perturbation",)  # imagenet-val(-re8)
    explain = tuple(sorted({"target" if c.metric.endswith("_target") else "pred" for c in claims}))
    return ExperimentConfig(
        name=f"paper-{dataset}",
        model="vit_base_patch16_224",
        dataset=dataset,
        denoiser=os.environ.get(ADM_ENV) or None,
        methods=tuple(methods),
        dds=tuple(DDSSpec(v, sigma=None) for v in variants),  # each variant's paper default
        radii_255=tuple(radii),
        tasks=tasks,
        explain_classes=explain or ("pred",),
        limit=None,
        batch_size=8,
    )
