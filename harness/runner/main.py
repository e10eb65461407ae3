"""Run an experiment (optionally one shard of it), merge shards, and write its tables."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from harness.report.tables import CONVENTIONS, write_table
from harness.runner.aggregate import all_tables
from harness.runner.config import ExperimentConfig
from harness.runner.experiment import STORE_NAME, distributed_shard, load_rows, merge_shards, run_experiment
from harness.runner.store import read_meta

REPORTS = Path("reports")
CLAIMS_DIR = REPORTS / "claims"
COST_DIR = REPORTS / "cost"
TITLES = {
    "segmentation": "Segmentation (explanation map vs object mask), without and with DDS",
    "perturbation": "Perturbation tests (pixels of the clean image deleted by the map's ranking)",
    "faithfulness": "FViT faithfulness under attack (clean vs attacked explanation)",
    "extra_metrics": "Metrics beyond the papers: insertion/deletion, ROAD, max-sensitivity (opt-in tasks)",
}


def _sigma_text(spec) -> str:
    from harness.smoothing.dds import get_variant

    variant = get_variant(spec.variant)
    if variant.deterministic and not variant.needs_denoiser:  # identity, oracle: no noise is drawn
        return "none (this variant draws no noise)"
    sigma = spec.sigma if spec.sigma is not None else variant.default_sigma
    return f"{sigma:.4f} in [0,1] pixel units ({sigma * 255:.1f}/255)"


def _samples_text(cfg: ExperimentConfig, spec) -> str:
    """The DDS samples per image m the run used, as a number (Re's per-task counts for `re`)."""
    from harness.runner.experiment import _samples_task
    from harness.smoothing.dds import get_variant, re_samples

    if spec.samples is not None:
        return str(spec.samples)
    if spec.variant == "re":
        task = _samples_task(cfg)
        return (
            f"{re_samples(task, False)} per clean and {re_samples(task, True)} per attacked image "
            f"(Re's counts for {task})"
        )
    return str(get_variant(spec.variant).default_samples)


def attack_text(cfg: ExperimentConfig) -> str:
    if cfg.attack == "adaptive":
        return (
            f"adaptive L-inf PGD on each method's own map ({cfg.attack_steps} steps of radius/5, random start, "
            f"loss {cfg.adaptive_loss}, through the row's DDS variant with {cfg.eot_samples} noise draws per step)"
        )
    return f"PGD L-inf, {cfg.attack_steps} steps of radius/5, random start, cross-entropy on the predicted class"


def _identity_text(out_dir: Path) -> str:
    """' Computed on ...' from the store's run identity (device, threads, torch, commit), or ''."""
    store = out_dir / STORE_NAME
    meta = read_meta(store) if store.is_file() else {}
    if "identity" not in meta:
        return ""
    ident = json.loads(meta["identity"])
    commit = (ident.get("git_commit") or "unknown")[:10]
    return (
        f" Computed on {ident['device']} with {ident['torch_threads']} torch thread(s), torch "
        f"{ident['torch_version']}, fvit-bench {ident['harness_version']} at commit {commit}."
    )


def write_tables(cfg: ExperimentConfig, out_dir: Path, rows: pd.DataFrame) -> dict[str, Path]:
    """Write every table the rows support as CSV + markdown; returns markdown paths by table name."""
    world = "embedded world (an analogue, not the paper's data)" if cfg.dataset == "embedded" else cfg.dataset
    dds = (
        "; ".join(
            f"{d.variant}: sigma {_sigma_text(d)}, samples {_samples_text(cfg, d)}, each sample explains "
            f"{'its own predicted class' if d.sample_target == 'own' else 'the class predicted on the input'}"
            for d in cfg.dds
        )
        or "off"
    )
    context = [
        f"Run `{cfg.name}`: model {cfg.model}, dataset {world}, {rows['item_id'].nunique()} images, seed {cfg.seed}.",
        f"DDS: {dds}.",
        f"Attack: {attack_text(cfg)}.",
        f"Config hash {cfg.config_hash()}.{_identity_text(out_dir)}",
    ]
    paths = {}
    for name, table in all_tables(rows).items():
        # The opt-in metrics are mostly in [0, 1] (max-sensitivity ratios often below 0.1): 3 decimals.
        floatfmt = ".3f" if name == "extra_metrics" else ".2f"
        _, md = write_table(table, out_dir, name, TITLES[name], CONVENTIONS[name], context, floatfmt)
        paths[name] = md
    return paths


def run_and_report(
    cfg: ExperimentConfig,
    out_dir: str | Path,
    shard: int | None = None,
    num_shards: int | None = None,
    progress: bool = True,
    gallery: int = 4,
) -> dict[str, Path]:
    """Run `cfg` (resuming), then, once every shard is in, merge and write tables and the report (with a
    gallery of the first `gallery` images, 0 = none, from the maps this process computed where it can).

    Without explicit shard arguments the shard comes from torchrun (RANK/WORLD_SIZE) or Slurm
    array variables; with several shards under torchrun, rank 0 merges after a gloo barrier.
    """
    out_dir = Path(out_dir)
    if shard is None or num_shards is None:
        shard, num_shards = distributed_shard()
    collector = None
    if gallery > 0:
        from harness.report.gallery import MapCollector
        from harness.report.run_report import gallery_items, gallery_method

        collector = MapCollector([it.item_id for it in gallery_items(cfg, gallery)], gallery_method(cfg))
    run_experiment(cfg, out_dir, shard, num_shards, progress=progress, map_sink=collector)
    if num_shards > 1:
        if not _barrier_if_distributed():
            return {}  # a Slurm array task: merge later with `fvit-bench merge`
        if shard != 0:
            return {}
        merge_shards(out_dir, cfg, num_shards)
        import torch.distributed as dist

        dist.destroy_process_group()
    paths = write_tables(cfg, out_dir, load_rows(out_dir, cfg))
    paths["report"] = write_report(cfg, out_dir, gallery=gallery, collector=collector)
    return paths


def _barrier_if_distributed() -> bool:
    """Under torchrun: init gloo, wait for every rank, return True. Otherwise False."""
    if "TORCHELASTIC_RUN_ID" not in os.environ and "MASTER_ADDR" not in os.environ:
        return False
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    dist.barrier()
    return True


def write_report(
    cfg: ExperimentConfig,
    out_dir: Path,
    claims_dir: Path = CLAIMS_DIR,
    cost_dir: Path = COST_DIR,
    gallery: int = 4,
    collector=None,
) -> Path:
    """report.html/.md of a run folder (`harness.report.run_report`): summary, tables with intervals, plots,
    a gallery of the first `gallery` images (0 = none; `collector` = maps the run kept), matching verdicts, cost."""
    from harness.report.run_report import write_run_report

    return write_run_report(cfg, out_dir, load_rows(out_dir, cfg), claims_dir, cost_dir, gallery, collector)
