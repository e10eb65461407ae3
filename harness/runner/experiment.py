"""The experiment runner: attack -> (DDS) -> explain -> metrics, persisted unit by unit, resumable.

Order (docs/PROTOCOL.md section 5): the image is attacked (PGD on the prediction; radius 0 = clean),
optionally smoothed by DDS, explained for the class the model predicts on the attacked image
("pred"; under DDS each purified sample explains its own prediction, as the papers' code does) or
for the label ("target"); segmentation scores the map against the mask, the
perturbation test deletes pixels of the CLEAN image ranked by that map.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from harness.attacks.adaptive import adaptive_attack
from harness.attacks.pgd import pgd_linf
from harness.data.registry import get_dataset
from harness.explainers.registry import get_explainer
from harness.metrics.extra import extra_metric_columns
from harness.metrics.faithfulness import topk_overlap
from harness.metrics.perturbation import perturbation_correctness
from harness.metrics.segmentation import segmentation_stats
from harness.models.classifier import ViTClassifier
from harness.models.denoiser import Denoiser, load_denoiser
from harness.models.mini import MINI_DENOISER_DIR
from harness.models.zoo import load_classifier
from harness.runner.config import ExperimentConfig
from harness.runner.plan import shard_chunks, unit_key, unit_seed
from harness.runner.store import RowStore
from harness.smoothing.dds import RE_SAMPLES_ATTACKED, RE_SAMPLES_CLEAN, SmoothedExplainer, smooth

NO_DDS = "none"
STORE_NAME = "rows.sqlite"


def shard_store_name(shard: int, num_shards: int) -> str:
    return STORE_NAME if num_shards == 1 else f"rows.shard{shard:03d}of{num_shards:03d}.sqlite"


def load_denoiser_for(cfg: ExperimentConfig) -> Denoiser | None:
    if not cfg.dds:
        return None
    if cfg.denoiser:
        return load_denoiser(cfg.denoiser)
    if cfg.model == "mini-vit":
        return load_denoiser(MINI_DENOISER_DIR)
    raise FileNotFoundError(
        f"model {cfg.model} needs a paper-scale denoiser for DDS: convert guided-diffusion's "
        "256x256_diffusion_uncond.pt with `fvit-bench convert-adm` and set `denoiser:` to the output folder"
    )


def _explainers(cfg: ExperimentConfig, denoiser: Denoiser | None) -> dict[tuple[str, str], object]:
    out: dict[tuple[str, str], object] = {}
    for method in cfg.resolved_methods():
        base = get_explainer(method)
        out[(method, NO_DDS)] = base
        for spec in cfg.dds:
            out[(method, spec.variant)] = smooth(
                base, denoiser, spec.variant, sigma=spec.sigma, samples=spec.samples, fusion=spec.fusion,
                sample_target=spec.sample_target,
            )
    return out


def _for_unit(explainer, seed: int, attacked: bool):
    """The unit's explainer: DDS noise seeded by the unit; Re's m = 2 on attacked inputs, 10 on clean ones."""
    if not isinstance(explainer, SmoothedExplainer):
        return explainer
    changes: dict = {"seed": seed}
    if explainer.variant == "re" and explainer.samples is None:
        changes["samples"] = RE_SAMPLES_ATTACKED if attacked else RE_SAMPLES_CLEAN
    return dataclasses.replace(explainer, **changes)


class PurifiedCache:
    """Purify each image batch once per DDS setting and share it across explanation methods.

    Every method's smoothed explainer of a unit has the same DDS settings and seed, so the m
    purified copies (the expensive denoiser calls) and the classes predicted on them are identical;
    only the explanation differs.
    """

    def __init__(self) -> None:
        self._store: dict[tuple, torch.Tensor] = {}

    def explain(
        self, explainer, model: ViTClassifier, images: torch.Tensor, target: torch.Tensor, tag: str,
        predicted: bool = False,
    ):
        """Maps of `images` for `target`; predicted=True says `target` is the model's prediction on `images`,
        so a smoothed explainer may explain each sample's own prediction instead (its `sample_target`)."""
        if not isinstance(explainer, SmoothedExplainer):
            return explainer(model, images, target)
        key = (tag, explainer.variant, explainer.sigma, explainer.n_samples, explainer.seed, id(explainer.denoiser))
        if key not in self._store:
            purified = explainer.purify(images)
            self._store[key] = (purified, explainer.predicted_classes(model, purified))
        purified, own_classes = self._store[key]
        own = predicted and explainer.sample_target == "own"
        return explainer.explain_purified(model, purified, own_classes if own else target)


def _unit_rows(
    cfg: ExperimentConfig,
    model: ViTClassifier,
    explainer,
    items,
    clean: torch.Tensor,
    adv: torch.Tensor,
    labels: torch.Tensor,
    clean_pred: torch.Tensor,
    pred: torch.Tensor,
    clean_maps: torch.Tensor | None,
    base: dict,
    cache: PurifiedCache,
    tag: str,
) -> tuple[list[dict], torch.Tensor]:
    """Rows of one unit, and the maps of the predicted class (the clean maps when radius is 0)."""
    rows = [
        {**base, "item_id": it.item_id, "label": int(it.label), "clean_pred": int(clean_pred[k]), "pred": int(pred[k])}
        for k, it in enumerate(items)
    ]
    maps = {"pred": cache.explain(explainer, model, adv, pred, tag, predicted=True)}
    if "perturbation" in cfg.tasks and "target" in cfg.explain_classes:
        maps["target"] = cache.explain(explainer, model, adv, labels, tag)
    if "segmentation" in cfg.tasks:
        masks = torch.stack([it.mask for it in items])
        for k, row in enumerate(rows):
            row.update(segmentation_stats(maps["pred"][k], masks[k]))
    if "perturbation" in cfg.tasks:
        for mode in cfg.explain_classes:
            for positive in (True, False):
                correct = perturbation_correctness(model, clean, maps[mode], labels, positive)
                name = f"{'positive' if positive else 'negative'}_{mode}"
                for k, row in enumerate(rows):
                    row[name] = [float(v) for v in correct[k]]
    extra = extra_metric_columns(cfg.tasks, model, explainer, clean, adv, maps["pred"], pred, labels, cfg.seed)
    for name, values in extra.items():
        for k, row in enumerate(rows):
            row[name] = values[k]
    overlap = topk_overlap(clean_maps, maps["pred"], cfg.topk) if clean_maps is not None else None
    for k, row in enumerate(rows):
        row["topk_overlap"] = None if overlap is None else float(overlap[k])
    return rows, maps["pred"]


def _adaptive(cfg: ExperimentConfig, model: ViTClassifier, clean: torch.Tensor, radius: float, method: str,
              explainer, seed: int) -> torch.Tensor:
    """The adaptive attack on `method`'s map, through the unit's DDS variant (with EOT) when it has one."""
    smoothed = isinstance(explainer, SmoothedExplainer)
    return adaptive_attack(
        model, clean, radius, method=method, denoiser=explainer.denoiser if smoothed else None,
        variant=explainer.variant if smoothed else None, sigma=explainer.sigma if smoothed else None,
        eot_samples=cfg.eot_samples, steps=cfg.attack_steps, loss=cfg.adaptive_loss, topk=cfg.topk, seed=seed,
    )


def _run_chunk(
    cfg: ExperimentConfig,
    model: ViTClassifier,
    explainers: dict,
    items: list,
    chunk: int,
    todo: dict[tuple[float, str, str], str],
    store: RowStore,
    bar: tqdm,
    map_sink=None,
) -> None:
    """Compute and store every pending unit of one chunk of items; `map_sink(items, method, dds, radius_255,
    inputs, maps)` sees each finished unit's input batch and maps (the report's gallery keeps a few)."""
    clean = torch.stack([it.image for it in items])
    labels = torch.tensor([int(it.label) for it in items])
    with torch.no_grad():
        clean_pred = model(clean).argmax(1)
    # Clean maps (seeded as the radius-0 unit) are the reference of the top-k overlap.
    clean_maps: dict[tuple[str, str], torch.Tensor] = {}
    cache = PurifiedCache()
    clean_seed = unit_seed(cfg.seed, chunk, 0.0)

    def clean_map(method: str, variant: str) -> torch.Tensor:
        if (method, variant) not in clean_maps:
            explainer = _for_unit(explainers[(method, variant)], clean_seed, attacked=False)
            clean_maps[(method, variant)] = cache.explain(explainer, model, clean, clean_pred, "r0.0", predicted=True)
        return clean_maps[(method, variant)]

    for radius_255, radius in zip(cfg.radii_255, cfg.radii, strict=True):
        pending = [(m, v) for (r, m, v) in todo if r == radius_255]
        if not pending:
            continue
        seed = unit_seed(cfg.seed, chunk, radius_255)
        shared = cfg.attack == "pgd" or radius_255 == 0  # one attacked batch for every unit of this radius
        if shared:
            adv = pgd_linf(model, clean, radius, steps=cfg.attack_steps, seed=seed)
            with torch.no_grad():
                pred = model(adv).argmax(1)
        for method, variant in pending:
            explainer = _for_unit(explainers[(method, variant)], seed, attacked=radius_255 > 0)
            ref = clean_map(method, variant) if radius_255 > 0 else None
            base = {"method": method, "dds": variant, "radius_255": float(radius_255)}
            tag = f"r{float(radius_255)}"
            if not shared:  # the adaptive attack targets this unit's own (smoothed) map
                adv = _adaptive(cfg, model, clean, radius, method, explainer, seed)
                with torch.no_grad():
                    pred = model(adv).argmax(1)
                tag += f"-{method}-{variant}"
            rows, maps = _unit_rows(
                cfg, model, explainer, items, clean, adv, labels, clean_pred, pred, ref, base, cache, tag
            )
            if radius_255 == 0:
                clean_maps[(method, variant)] = maps
            if map_sink is not None:
                map_sink(items, method, variant, float(radius_255), adv, maps)
            store.put(todo[(radius_255, method, variant)], rows)
            bar.update(len(items))


def run_experiment(
    cfg: ExperimentConfig, out_dir: str | Path, shard: int = 0, num_shards: int = 1, progress: bool = True,
    map_sink=None,
) -> Path:
    """Run (or resume) this shard of `cfg`, persisting each unit as it finishes; returns the store path.

    map_sink: optional callable given each finished unit's inputs and maps (see `_run_chunk`)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    model = load_classifier(cfg.model, cfg.weights)
    dataset = get_dataset(cfg.dataset, cfg.dataset_root)
    explainers = _explainers(cfg, load_denoiser_for(cfg))
    n_items = len(dataset) if cfg.limit is None else min(cfg.limit, len(dataset))
    path = out_dir / shard_store_name(shard, num_shards)
    store = RowStore(path, cfg.config_hash())
    done = store.done()
    chunks = shard_chunks(n_items, cfg.batch_size, shard, num_shards)
    total = sum(len(r) for _, r in chunks) * len(cfg.radii_255) * len(explainers)
    desc = f"{cfg.name} shard {shard + 1}/{num_shards}" if num_shards > 1 else cfg.name
    try:
        with tqdm(total=total, desc=desc, unit="map", disable=not progress) as bar:
            for chunk, index_range in chunks:
                keys = {(r, m, v): unit_key(chunk, r, m, v) for r in cfg.radii_255 for (m, v) in explainers}
                todo = {k: key for k, key in keys.items() if key not in done}
                bar.update(len(index_range) * (len(keys) - len(todo)))
                if todo:
                    items = [dataset[i] for i in index_range]
                    _run_chunk(cfg, model, explainers, items, chunk, todo, store, bar, map_sink)
    finally:
        store.close()
    return path


def merge_shards(out_dir: str | Path, cfg: ExperimentConfig, num_shards: int) -> Path:
    """Merge the shard stores of `out_dir` into its single store; returns its path."""
    out_dir = Path(out_dir)
    target = RowStore(out_dir / STORE_NAME, cfg.config_hash())
    try:
        for shard in range(num_shards):
            path = out_dir / shard_store_name(shard, num_shards)
            if not path.is_file():
                raise FileNotFoundError(f"shard store {path} is missing: run shard {shard} of {num_shards} first")
            target.merge_from(path)
    finally:
        target.close()
    return out_dir / STORE_NAME


def load_rows(out_dir: str | Path, cfg: ExperimentConfig) -> pd.DataFrame:
    store = RowStore(Path(out_dir) / STORE_NAME, cfg.config_hash())
    try:
        return store.frame()
    finally:
        store.close()


def distributed_shard() -> tuple[int, int]:
    """(shard, number of shards) from torchrun (RANK/WORLD_SIZE) or a Slurm job array; (0, 1) otherwise.

    A Slurm array `--array=A-B` gives shard SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT.
    """
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return int(env["RANK"]), int(env["WORLD_SIZE"])
    if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
        low = int(env.get("SLURM_ARRAY_TASK_MIN", 0))
        return int(env["SLURM_ARRAY_TASK_ID"]) - low, int(env["SLURM_ARRAY_TASK_COUNT"])
    return 0, 1
