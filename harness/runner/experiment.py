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
import tempfile
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from harness.attacks.adaptive import adaptive_attack
from harness.attacks.differentiable import attack_form
from harness.attacks.pgd import pgd_linf
from harness.data.item import CorruptItemError
from harness.data.registry import get_dataset
from harness.explainers.registry import get_explainer
from harness.metrics.extra import extra_metric_columns
from harness.metrics.faithfulness import topk_overlap
from harness.metrics.perturbation import clean_correctness, deletion_order, perturbation_correctness
from harness.metrics.segmentation import segmentation_stats
from harness.models.classifier import ViTClassifier
from harness.models.denoiser import Denoiser, load_denoiser
from harness.models.mini import MINI_DENOISER_DIR
from harness.models.zoo import load_classifier
from harness.runner.config import ExperimentConfig
from harness.runner.devices import dds_batch_for, resolve_device
from harness.runner.identity import run_identity
from harness.runner.plan import chunk_ranges, key_order, shard_chunks, unit_key, unit_seed
from harness.runner.store import RowStore, StoreError, check_identity, lock, read_meta, replace_atomically
from harness.smoothing.dds import SmoothedExplainer, re_samples, smooth

NO_DDS = "none"
STORE_NAME = "rows.sqlite"


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; the message says how many units are saved and how to resume."""


def shard_store_name(shard: int, num_shards: int) -> str:
    return STORE_NAME if num_shards == 1 else f"rows.shard{shard:03d}of{num_shards:03d}.sqlite"


ADM_DIR_ENV = "FVIT_ADM_DIR"  # the converted ADM-256 folder paper models use when `denoiser` is unset


def load_denoiser_for(cfg: ExperimentConfig) -> Denoiser | None:
    """The run's denoiser: `denoiser` if set; else the embedded one for mini-vit, $FVIT_ADM_DIR for paper models."""
    if not cfg.dds:
        return None
    if cfg.denoiser:
        return load_denoiser(cfg.denoiser).set_dtype(cfg.denoiser_dtype)
    if cfg.model == "mini-vit":
        return load_denoiser(MINI_DENOISER_DIR).set_dtype(cfg.denoiser_dtype)
    if os.environ.get(ADM_DIR_ENV, "").strip():
        return load_denoiser(os.environ[ADM_DIR_ENV].strip()).set_dtype(cfg.denoiser_dtype)
    raise FileNotFoundError(
        f"model {cfg.model} needs a paper-scale denoiser for DDS: convert guided-diffusion's "
        "256x256_diffusion_uncond.pt with `fvit-bench convert-adm` and set `denoiser:` (or --denoiser, or "
        f"${ADM_DIR_ENV}) to the output folder"
    )


def _explainers(cfg: ExperimentConfig, denoiser: Denoiser | None, dds_batch: int = 64) -> dict[tuple[str, str], object]:
    out: dict[tuple[str, str], object] = {}
    for method in cfg.resolved_methods():
        base = get_explainer(method)
        out[(method, NO_DDS)] = base
        for spec in cfg.dds:
            out[(method, spec.variant)] = smooth(
                base,
                denoiser,
                spec.variant,
                sigma=spec.sigma,
                samples=spec.samples,
                fusion=spec.fusion,
                sample_target=spec.sample_target,
                max_batch=dds_batch,
            )
    return out


def _for_unit(explainer, seed: int, attacked: bool, task: str = "segmentation"):
    """The unit's explainer: DDS noise seeded by the unit; Re's m per task (`re_samples`) for `re`."""
    if not isinstance(explainer, SmoothedExplainer):
        return explainer
    changes: dict = {"seed": seed}
    if explainer.variant == "re" and explainer.samples is None:
        changes["samples"] = re_samples(task, attacked)
    return dataclasses.replace(explainer, **changes)


def trial_seed(seed: int, trial: int) -> int:
    """PGD's random-start seed of trial `trial` >= 1 of a unit seeded `seed` (attack_per_trial)."""
    return (seed + 1_000_003 * trial) & (2**63 - 1)


def _samples_task(cfg: ExperimentConfig) -> str:
    """The task whose DDS sample counts a unit uses (maps are shared by the tasks of a run)."""
    return "segmentation" if "segmentation" in cfg.tasks else "perturbation"


class PurifiedCache:
    """Purify each image batch once per DDS setting and share it across explanation methods.

    Every method's smoothed explainer of a unit has the same DDS settings and seed, so the m
    purified copies (the expensive denoiser calls) and the classes predicted on them are identical;
    only the explanation differs.
    """

    def __init__(self) -> None:
        self._store: dict[tuple, torch.Tensor] = {}
        self._maps: dict[tuple, torch.Tensor] = {}  # a needs_clean variant's maps: the same at every radius

    def explain(
        self,
        explainer,
        model: ViTClassifier,
        images: torch.Tensor,
        target: torch.Tensor,
        tag: str,
        predicted: bool = False,
        trials: torch.Tensor | None = None,
        clean: torch.Tensor | None = None,
    ):
        """Maps of `images` for `target`; predicted=True says `target` is the model's prediction on `images`,
        so a smoothed explainer may explain each sample's own prediction instead (its `sample_target`).
        trials: for a smoothed explainer, the m inputs of each image to purify (B*m, image-major: one
        attack per trial) instead of m copies of `images`. clean: the unattacked images (the oracle purifies
        those)."""
        if not isinstance(explainer, SmoothedExplainer):
            return explainer(model, images, target)
        if explainer.spec.needs_clean:  # the oracle purifies the clean images whatever the input: one batch per chunk
            tag, trials = "clean", None
        key = self._key(explainer, tag, trials is not None)
        if key not in self._store:
            purified = explainer.purify(images, clean) if trials is None else explainer.purify_copies(trials)
            self._store[key] = (purified, explainer.predicted_classes(model, purified))
        purified, own_classes = self._store[key]
        own = predicted and explainer.sample_target == "own"
        if not explainer.spec.needs_clean:
            return explainer.explain_purified(model, purified, own_classes if own else target)
        # Its maps depend on the clean batch and the class explained only: computed once, shared by every radius.
        explained = own_classes if own else target
        memo = (key, id(explainer.explainer), explainer.fusion_name, explained.cpu().numpy().tobytes())
        if memo not in self._maps:
            self._maps[memo] = explainer.explain_purified(model, purified, explained)
        return self._maps[memo]

    @staticmethod
    def _key(explainer: SmoothedExplainer, tag: str, trials: bool) -> tuple:
        """What determines a purified batch: the input (tag, per-trial inputs or copies) and the DDS setting."""
        return (
            tag,
            explainer.variant,
            explainer.sigma,
            explainer.n_samples,
            explainer.seed,
            id(explainer.denoiser),
            trials,
        )

    def smoothed_pred(self, explainer, tag: str, trials: bool = False) -> torch.Tensor | None:
        """The smoothed prediction of the images last explained under `tag` by `explainer` (None without
        DDS): the majority vote of the classes predicted on the m purified samples (ties: lowest class)."""
        if not isinstance(explainer, SmoothedExplainer):
            return None
        if explainer.spec.needs_clean:
            tag, trials = "clean", False
        key = self._key(explainer, tag, trials)
        classes = self._store[key][1].view(-1, explainer.n_samples)
        votes = torch.zeros(classes.shape[0], int(classes.max()) + 1, dtype=torch.long, device=classes.device)
        votes.scatter_add_(1, classes, torch.ones_like(classes))
        return votes.argmax(1)  # argmax returns the first maximum: the lowest class among ties


class PerturbationCache:
    """The perturbation curves of one chunk's clean images, by the deletion order of the whole batch.

    The curves depend on a map only through the order it deletes pixels in, so a unit whose maps order
    every pixel as an earlier unit's did (the identity 'DDS' beside the plain method, a constant baseline
    map with and without DDS) gets that unit's curves, computed on the same batch, bit for bit.
    """

    def __init__(self, model: ViTClassifier, clean: torch.Tensor, labels: torch.Tensor) -> None:
        self.model, self.clean, self.labels = model, clean, labels
        self._store: dict[tuple[bool, bytes], torch.Tensor] = {}
        self._clean: torch.Tensor | None = None  # the curves' shared first point

    def correctness(self, maps: torch.Tensor, positive: bool) -> torch.Tensor:
        key = (positive, deletion_order(maps, positive).cpu().numpy().tobytes())
        if key not in self._store:
            if self._clean is None:
                self._clean = clean_correctness(self.model, self.clean, self.labels)
            self._store[key] = perturbation_correctness(
                self.model, self.clean, maps, self.labels, positive, clean=self._clean
            )
        return self._store[key]


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
    trials: torch.Tensor | None = None,
    curves: PerturbationCache | None = None,
) -> tuple[list[dict], torch.Tensor]:
    """Rows of one unit, and the maps of the predicted class (the clean maps when radius is 0).

    Device tensors reach the rows through one `.tolist()` each (one host sync per tensor, not per item)."""
    clean_classes, classes = clean_pred.tolist(), pred.tolist()
    rows = [
        {**base, "item_id": it.item_id, "label": int(it.label), "clean_pred": clean_classes[k], "pred": classes[k]}
        for k, it in enumerate(items)
    ]
    maps = {"pred": cache.explain(explainer, model, adv, pred, tag, predicted=True, trials=trials, clean=clean)}
    smoothed = cache.smoothed_pred(explainer, tag, trials is not None)
    smoothed = None if smoothed is None else smoothed.tolist()
    for k, row in enumerate(rows):
        row["smoothed_pred"] = None if smoothed is None else smoothed[k]
    if "perturbation" in cfg.tasks and "target" in cfg.explain_classes:
        maps["target"] = cache.explain(explainer, model, adv, labels, tag, trials=trials, clean=clean)
    if "segmentation" in cfg.tasks:
        masks = torch.stack([it.mask for it in items])
        seg_maps = maps["pred"].cpu()
        for k, row in enumerate(rows):
            row.update(segmentation_stats(seg_maps[k], masks[k]))
    if "perturbation" in cfg.tasks:
        for mode in cfg.explain_classes:
            for positive in (True, False):
                correct = (
                    curves.correctness(maps[mode], positive)
                    if curves is not None
                    else perturbation_correctness(model, clean, maps[mode], labels, positive)
                )
                name = f"{'positive' if positive else 'negative'}_{mode}"
                for row, values in zip(rows, correct.tolist(), strict=True):
                    row[name] = values
    extra = extra_metric_columns(cfg.tasks, model, explainer, clean, adv, maps["pred"], pred, labels, cfg.seed)
    for name, values in extra.items():
        for k, row in enumerate(rows):
            row[name] = values[k]
    overlap = topk_overlap(clean_maps, maps["pred"], cfg.topk).tolist() if clean_maps is not None else None
    for k, row in enumerate(rows):  # NaN (a constant map has no top-k) is stored as None: undefined
        value = None if overlap is None else overlap[k]
        row["topk_overlap"] = None if value is None or value != value else value
    return rows, maps["pred"]


def _adaptive(
    cfg: ExperimentConfig,
    model: ViTClassifier,
    clean: torch.Tensor,
    radius: float,
    method: str,
    explainer,
    seed: int,
    done: dict[tuple, torch.Tensor],
) -> tuple[str, torch.Tensor]:
    """The adaptive attack on `method`'s map, through the unit's DDS variant (with EOT) when it has one:
    a name of the attacked batch (the units that share it share its purified samples too) and the batch.

    A method attacked through a surrogate (`attack_form`) gets the very attack of the method it stands in for
    (same differentiable form, inputs and seed): `done` keeps each attacked batch by what determines it."""
    smoothed = isinstance(explainer, SmoothedExplainer)
    variant, sigma = (explainer.variant, explainer.sigma) if smoothed else (None, None)
    tag = variant
    # Through the identity purifier (m = 1) the attack is the plain one, bit for bit; the oracle ignores its
    # input, so no attack through it can do better than the plain one either.
    if variant in ("identity", "oracle"):
        smoothed, variant, sigma = False, None, None
    form = attack_form(method)[1]
    key = (
        form.removeprefix("surrogate:") if form != "exact" else method,
        variant,
        sigma,
        id(explainer.denoiser) if smoothed else None,
        seed,
        radius,
    )
    if key not in done:
        done[key] = adaptive_attack(
            model,
            clean,
            radius,
            method=method,
            denoiser=explainer.denoiser if smoothed else None,
            variant=variant,
            sigma=sigma,
            eot_samples=cfg.eot_samples,
            steps=cfg.attack_steps,
            loss=cfg.adaptive_loss,
            topk=cfg.topk,
            seed=seed,
        )
    return f"{key[0]}-{tag}", done[key]


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
    if not items:  # every item of the chunk was skipped as corrupt
        for key in todo.values():
            store.put(key, [])
        return
    device = next(model.parameters()).device
    clean = torch.stack([it.image for it in items]).to(device)
    labels = torch.tensor([int(it.label) for it in items], device=device)
    with torch.no_grad():
        clean_pred = model(clean).argmax(1)
    # Clean maps (seeded as the radius-0 unit) are the reference of the top-k overlap.
    clean_maps: dict[tuple[str, str], torch.Tensor] = {}
    cache = PurifiedCache()
    curves = PerturbationCache(model, clean, labels)
    clean_seed = unit_seed(cfg.seed, chunk, 0.0)
    per_trial = {d.variant for d in cfg.dds if d.attack_per_trial}
    trial_attacks: dict[tuple[float, int], torch.Tensor] = {}
    adaptive_attacks: dict[tuple, torch.Tensor] = {}

    def trials_of(explainer, radius_255: float, radius: float, adv: torch.Tensor, seed: int) -> torch.Tensor | None:
        """FViT's notebook (attack_per_trial): one PGD attack per trial, (B*m) image-major; trial 0 = `adv`."""
        if not isinstance(explainer, SmoothedExplainer) or explainer.variant not in per_trial or radius_255 == 0:
            return None
        m = explainer.n_samples
        if (radius_255, m) not in trial_attacks:
            attacks = [adv] + [
                pgd_linf(model, clean, radius, steps=cfg.attack_steps, seed=trial_seed(seed, k)) for k in range(1, m)
            ]
            trial_attacks[(radius_255, m)] = torch.stack(attacks, dim=1).flatten(0, 1)
        return trial_attacks[(radius_255, m)]

    def clean_map(method: str, variant: str) -> torch.Tensor:
        if (method, variant) not in clean_maps:
            explainer = _for_unit(explainers[(method, variant)], clean_seed, attacked=False, task=_samples_task(cfg))
            clean_maps[(method, variant)] = cache.explain(
                explainer, model, clean, clean_pred, "r0.0", predicted=True, clean=clean
            )
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
            explainer = _for_unit(explainers[(method, variant)], seed, attacked=radius_255 > 0, task=_samples_task(cfg))
            ref = clean_map(method, variant) if radius_255 > 0 else None
            base = {"method": method, "dds": variant, "radius_255": float(radius_255)}
            tag = f"r{float(radius_255)}"
            if not shared:  # the adaptive attack targets this unit's own (smoothed) map
                attacked, adv = _adaptive(cfg, model, clean, radius, method, explainer, seed, adaptive_attacks)
                with torch.no_grad():
                    pred = model(adv).argmax(1)
                tag += f"-{attacked}"
            trials = trials_of(explainer, radius_255, radius, adv, seed) if shared else None
            rows, maps = _unit_rows(
                cfg,
                model,
                explainer,
                items,
                clean,
                adv,
                labels,
                clean_pred,
                pred,
                ref,
                base,
                cache,
                tag,
                trials,
                curves,
            )
            if radius_255 == 0:
                clean_maps[(method, variant)] = maps
            if map_sink is not None:
                map_sink(items, method, variant, float(radius_255), adv, maps)
            store.put(todo[(radius_255, method, variant)], rows)
            bar.update(len(items))


def run_experiment(
    cfg: ExperimentConfig,
    out_dir: str | Path,
    shard: int = 0,
    num_shards: int = 1,
    progress: bool = True,
    map_sink=None,
) -> Path:
    """Run (or resume) this shard of `cfg`, persisting each unit as it finishes; returns the store path.

    map_sink: optional callable given each finished unit's inputs and maps (see `_run_chunk`).

    The run identity is checked against the store before anything in `out_dir` is written; a second
    process on the same store is refused (one-writer lock).
    """
    out_dir = _out_folder(out_dir)
    path = out_dir / shard_store_name(shard, num_shards)
    device = resolve_device(cfg.device)
    dataset = get_dataset(cfg.dataset, cfg.dataset_root)
    denoiser = load_denoiser_for(cfg)
    dds_batch = dds_batch_for(device, denoiser.sample_size if denoiser is not None else None, cfg.dds_batch)
    identity = run_identity(cfg, device, dds_batch, len(dataset))
    writer = lock(path)
    try:
        check_identity(path, identity)
        _write_atomically(out_dir / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
        if progress:
            print(f"{cfg.name}: device {device}, {torch.get_num_threads()} torch threads, DDS batch {dds_batch}")
        model = load_classifier(cfg.model, cfg.weights).to(device)
        if denoiser is not None:
            denoiser = denoiser.to(device)
        explainers = _explainers(cfg, denoiser, dds_batch)
        store = RowStore(path, cfg.config_hash(), identity)
        try:
            _run_units(cfg, dataset, model, explainers, store, shard, num_shards, progress, map_sink)
        finally:
            store.close()
    finally:
        writer.release()
    return path


def _out_folder(out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"--out {out_dir} is a file, not a folder; pass a folder for the run's results")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"cannot create the output folder {out_dir}: {err.strerror or err}") from None
    if not os.access(out_dir, os.W_OK):
        raise PermissionError(f"the output folder {out_dir} is not writable; pass another --out")
    return out_dir


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _n_items(cfg: ExperimentConfig, n_dataset: int) -> int:
    return n_dataset if cfg.limit is None else min(cfg.limit, n_dataset)


def _load_items(cfg: ExperimentConfig, dataset, index_range: range, store: RowStore) -> list:
    """The chunk's items; a corrupt one raises (corrupt_images: error) or is skipped and recorded."""
    items = []
    for i in index_range:
        try:
            items.append(dataset[i])
        except CorruptItemError as err:
            if cfg.corrupt_images == "error":
                raise
            skipped = store.get_meta("skipped_items", [])
            entry = {"index": i, "path": str(err.path), "error": str(err)}
            if entry not in skipped:
                store.set_meta("skipped_items", [*skipped, entry])
    return items


def _run_units(
    cfg, dataset, model, explainers, store: RowStore, shard: int, num_shards: int, progress: bool, map_sink=None
) -> None:
    done = store.done()
    chunks = shard_chunks(_n_items(cfg, len(dataset)), cfg.batch_size, shard, num_shards)
    total = sum(len(r) for _, r in chunks) * len(cfg.radii_255) * len(explainers)
    desc = f"{cfg.name} shard {shard + 1}/{num_shards}" if num_shards > 1 else cfg.name
    expected = {unit_key(c, r, rad, m, v) for c, r in chunks for rad in cfg.radii_255 for (m, v) in explainers}
    try:
        with tqdm(total=total, desc=desc, unit="map", disable=not progress) as bar:
            for chunk, index_range in chunks:
                keys = {
                    (r, m, v): unit_key(chunk, index_range, r, m, v) for r in cfg.radii_255 for (m, v) in explainers
                }
                todo = {k: key for k, key in keys.items() if key not in done}
                bar.update(len(index_range) * (len(keys) - len(todo)))
                if todo:
                    items = _load_items(cfg, dataset, index_range, store)
                    _run_chunk(cfg, model, explainers, items, chunk, todo, store, bar, map_sink)
    except KeyboardInterrupt:
        saved = len(store.done() & expected)
        raise RunInterrupted(
            f"interrupted: {saved} of {len(expected)} units are saved in {store.path}; rerun the same command to resume"
        ) from None


def merge_shards(out_dir: str | Path, cfg: ExperimentConfig, num_shards: int) -> Path:
    """Merge the shard stores of `out_dir` into its single store; returns its path.

    The merge is written to a temporary store and moved over OUT/rows.sqlite only once every shard
    merged, so a failed merge leaves nothing behind.
    """
    out_dir = Path(out_dir)
    paths = [out_dir / shard_store_name(shard, num_shards) for shard in range(num_shards)]
    for shard, path in enumerate(paths):
        if not path.is_file():
            raise FileNotFoundError(f"shard store {path} is missing: run shard {shard} of {num_shards} first")
    identity = _stored_identity(paths[0], cfg)
    final = out_dir / STORE_NAME
    writer = lock(final)
    tmp = out_dir / f".{STORE_NAME}.merging"
    tmp.unlink(missing_ok=True)
    try:
        if final.exists():
            check_identity(final, identity)
        target = RowStore(tmp, cfg.config_hash(), identity)
        try:
            if final.exists():
                target.merge_from(final)
            for path in paths:
                target.merge_from(path)
        finally:
            target.close()
        replace_atomically(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
        for suffix in ("-wal", "-shm"):
            Path(f"{tmp}{suffix}").unlink(missing_ok=True)
        writer.release()
    return final


def _stored_identity(path: Path, cfg: ExperimentConfig) -> dict:
    meta = read_meta(path)
    if meta.get("config_hash") != cfg.config_hash():
        raise StoreError(
            f"{path} holds results of another configuration (hash {meta.get('config_hash')}, "
            f"this config {cfg.config_hash()}); pass the config the run used"
        )
    if "identity" not in meta:
        raise StoreError(f"{path} has no run identity (written by an older fvit-bench); rerun that shard")
    return json.loads(meta["identity"])


def load_rows(out_dir: str | Path, cfg: ExperimentConfig) -> pd.DataFrame:
    """The rows of `cfg`'s items (its `limit`) stored in OUT/rows.sqlite, in unit-key order.

    Units of other item ranges (a run with another limit) are left out; the store must hold `cfg`'s
    configuration (everything but name, limit and device).
    """
    path = Path(out_dir) / STORE_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no results store {path}: run the experiment first")
    identity = _stored_identity(path, cfg)
    n = _n_items(cfg, int(identity["dataset_items"]))
    radii = identity["config"]["radii_255"]
    pairs = {(m, NO_DDS) for m in identity["config"]["methods"]}
    pairs |= {(m, d["variant"]) for m in identity["config"]["methods"] for d in identity["config"]["dds"]}
    wanted = {
        unit_key(c, r, rad, m, v)
        for c, r in enumerate(chunk_ranges(n, cfg.batch_size))
        for rad in radii
        for (m, v) in pairs
    }
    store = RowStore(path, cfg.config_hash())
    try:
        return store.frame(wanted, order=key_order)
    finally:
        store.close()


def skipped_items(out_dir: str | Path) -> list[dict]:
    """The corrupt items a run skipped (corrupt_images: skip), from OUT/rows.sqlite's metadata."""
    meta = read_meta(Path(out_dir) / STORE_NAME)
    return json.loads(meta.get("skipped_items", "[]"))


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
