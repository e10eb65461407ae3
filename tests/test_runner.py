"""The experiment runner: persisted rows, resume after SIGKILL, shards that merge to the same result."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from harness.runner.aggregate import all_tables
from harness.runner.config import DDSSpec, ExperimentConfig, load_config
from harness.runner.experiment import load_rows, merge_shards, run_experiment
from harness.runner.plan import shard_chunks, unit_seed

# Three chunks of two items: two shards get an uneven split (chunks 0 and 2 vs 1); 24 units to kill a run in.
SMALL = ExperimentConfig(
    name="small",
    methods=("rollout", "raw_attention"),
    dds=(DDSSpec("carlini", sigma=32 / 255, samples=2),),
    radii_255=(0, 8),
    limit=6,
    batch_size=2,
)
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _write_config(path: Path, cfg: ExperimentConfig) -> Path:
    data = cfg.to_dict()
    path.write_text(yaml.safe_dump(data))
    assert load_config(path) == cfg
    return path


@contextlib.contextmanager
def _one_thread():
    """One torch thread, as the subprocesses run (`--threads 1`, OMP_NUM_THREADS=1): identical float sums."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> pd.DataFrame:
    """SMALL run uninterrupted, in this process with one thread (the other runs start processes of their own)."""
    out = tmp_path_factory.mktemp("reference")
    with _one_thread():
        run_experiment(SMALL, out, progress=False)
    return load_rows(out, SMALL)


def test_rows_cover_every_unit_and_tables_follow(reference):
    assert len(reference) == 6 * 2 * 4  # items x radii x (2 methods x {none, carlini})
    assert not reference.duplicated(["item_id", "method", "dds", "radius_255"]).any()
    tables = all_tables(reference)
    assert set(tables) == {"segmentation", "perturbation", "faithfulness"}
    seg = tables["segmentation"]
    assert seg[["pixel_accuracy", "mIoU", "mAP"]].apply(lambda c: c.between(0, 100)).all().all()
    assert tables["perturbation"]["positive_auc_chefer"].between(0, 90).all()
    assert tables["faithfulness"]["topk_overlap"].between(0, 1).all()
    # Every prediction column is a fraction (the claims' top-1 convention), never a percent.
    key = ["method", "dds", "radius_255"]
    first = reference[(reference[key] == ["rollout", "none", 8]).all(axis=1)]
    hit = seg[(seg["method"] == "rollout") & (seg["dds"] == "none") & (seg["radius_255"] == 8)]
    assert hit["top1_under_attack"].item() == pytest.approx((first["pred"] == first["label"]).mean())
    assert hit["prediction_flipped"].item() == pytest.approx((first["pred"] != first["clean_pred"]).mean())


def _cli_in_this_fork(argv: list[str]) -> None:
    """The CLI in a forked child, its output discarded (the child is killed: no pytest teardown runs in it).
    One torch thread before anything else (as `--threads 1` would): libgomp hangs in a forked child that
    opens a parallel region with more threads."""
    from harness.cli import main

    torch.set_num_threads(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    main(argv)


def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path, reference):
    """`fvit-bench run` SIGKILLed mid-run leaves a store that the same run resumes to the uninterrupted rows.

    The killed run is a fork of this process running the CLI (`run --threads 1`, as the subprocesses of the
    other tests): it has torch, timm and diffusers imported already, so it reaches its first rows seconds
    sooner than a fresh interpreter; SIGKILL ends it as abruptly as any process (no cleanup, lock and store
    left as they are)."""
    cfg_path = _write_config(tmp_path / "small.yaml", SMALL)
    argv = ["run", "--config", str(cfg_path), "--out", str(tmp_path), "--threads", "1"]
    proc = multiprocessing.get_context("fork").Process(target=_cli_in_this_fork, args=(argv,), daemon=True)
    proc.start()
    store, deadline, stored = tmp_path / "rows.sqlite", time.time() + 240, 0
    while time.time() < deadline and proc.is_alive():
        if store.exists():
            try:
                with sqlite3.connect(store) as conn:
                    stored = conn.execute("SELECT COUNT(*) FROM units").fetchone()[0]
            except sqlite3.OperationalError:
                stored = 0
            if stored >= 5:
                break
        time.sleep(0.05)
    assert proc.is_alive(), f"the run ended (exit code {proc.exitcode}) before it could be killed; make SMALL bigger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert proc.exitcode == -signal.SIGKILL
    partial = load_rows(tmp_path, SMALL)
    assert 0 < len(partial) < len(reference)
    with _one_thread():  # resume in this process: what matters is the store the killed process left
        run_experiment(load_config(cfg_path), tmp_path, progress=False)
    pd.testing.assert_frame_equal(load_rows(tmp_path, SMALL), reference)


# Two real launcher processes (~19 s, mostly their imports): nightly (`-m slow`). The default suite covers the
# same sharding in process: shard runs + merge (test_run_identity.py) and the launcher's variables (below).
@pytest.mark.slow
def test_two_torchrun_shards_merge_to_the_single_process_result(tmp_path, reference):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun not found next to the interpreter"
    cfg_path = _write_config(tmp_path / "small.yaml", SMALL)
    subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc-per-node=2",
            "-m",
            "harness.cli",
            "run",
            "--config",
            str(cfg_path),
            "--out",
            str(tmp_path),
            "--threads",
            "1",
        ],
        check=True,
        env=ENV,
        capture_output=True,
    )
    assert (tmp_path / "rows.shard000of002.sqlite").is_file() and (tmp_path / "rows.shard001of002.sqlite").is_file()
    pd.testing.assert_frame_equal(load_rows(tmp_path, SMALL), reference)


def test_shards_partition_the_chunks():
    parts = [shard_chunks(23, 4, s, 3) for s in range(3)]
    chunks = sorted(k for part in parts for k, _ in part)
    assert chunks == list(range(6))
    with pytest.raises(ValueError, match="shard"):
        shard_chunks(10, 2, 3, 3)


def test_unit_seed_depends_only_on_its_key():
    assert unit_seed(0, 3, 8.0) == unit_seed(0, 3, 8)
    assert len({unit_seed(0, c, r) for c in range(5) for r in (0, 8)}) == 10


def test_store_refuses_another_config(tmp_path):
    run_experiment(SMALL.replace(limit=2, methods=("raw_attention",), dds=()), tmp_path, progress=False)
    with pytest.raises(ValueError, match="another run.*config.seed"):
        run_experiment(SMALL.replace(limit=2, seed=1, methods=("raw_attention",), dds=()), tmp_path, progress=False)


def test_merge_names_a_missing_shard(tmp_path):
    with pytest.raises(FileNotFoundError, match="shard 0 of 2"):
        merge_shards(tmp_path, SMALL, 2)


def test_config_errors_are_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("radii: [0, 8]\n")
    with pytest.raises(ValueError, match="unknown config key"):
        load_config(bad)
    with pytest.raises(ValueError, match="1/255"):
        ExperimentConfig(radii_255=(300,))
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")


def test_shard_from_environment(monkeypatch):
    from harness.runner.experiment import distributed_shard

    for var in ("RANK", "WORLD_SIZE", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN"):
        monkeypatch.delenv(var, raising=False)
    assert distributed_shard() == (0, 1)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "5")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "2")
    assert distributed_shard() == (3, 4)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distributed_shard() == (1, 2)


def test_purified_cache_matches_each_explainers_own_result(mini_vit, mini_denoiser, embedded_batch):
    from harness.explainers.registry import get_explainer
    from harness.runner.experiment import PurifiedCache
    from harness.smoothing.dds import smooth

    images = embedded_batch[0][:3]
    target = mini_vit(images).argmax(1)
    cache = PurifiedCache()
    for method in ("rollout", "attn_gradcam"):
        explainer = smooth(get_explainer(method), mini_denoiser, "carlini", sigma=32 / 255, samples=2, seed=7)
        torch.testing.assert_close(
            cache.explain(explainer, mini_vit, images, target, "r8.0"),
            explainer(mini_vit, images, target),
            rtol=0,
            atol=0,
        )
    assert len(cache._store) == 1  # both methods shared one purification


def test_adaptive_attack_targets_each_units_own_map(tmp_path, monkeypatch):
    """With attack: adaptive every (method, DDS) unit is attacked on its own map (through DDS with EOT);
    the radius-0 unit stays the clean image, and the rows' numbers come from those attacked images."""
    from harness.runner import experiment

    seen = []
    real = experiment.adaptive_attack

    def spy(model, images, radius, **kw):
        seen.append((kw["method"], kw["variant"] or "none", kw["eot_samples"], round(radius * 255)))
        return real(model, images, radius, **kw)

    monkeypatch.setattr(experiment, "adaptive_attack", spy)
    cfg = SMALL.replace(attack="adaptive", eot_samples=2, attack_steps=2, limit=2, tasks=("segmentation",))
    run_experiment(cfg, tmp_path, progress=False)
    assert sorted(seen) == sorted(
        [
            ("rollout", "none", 2, 8),
            ("rollout", "carlini", 2, 8),
            ("raw_attention", "none", 2, 8),
            ("raw_attention", "carlini", 2, 8),
        ]
    )
    rows = load_rows(tmp_path, cfg)
    attacked = rows[rows["radius_255"] == 8]
    assert len(attacked) == 2 * 4 and attacked["topk_overlap"].between(0, 1).all()


def test_adaptive_attack_config_is_validated():
    from harness.explainers.builtin import BUILTIN_METHODS

    # every built-in method: an exact differentiable form or a named surrogate (harness.attacks.differentiable)
    assert ExperimentConfig(attack="adaptive", methods=BUILTIN_METHODS).methods == BUILTIN_METHODS
    with pytest.raises(ValueError, match="adaptive_loss"):  # the targeted attack needs a target map per image
        ExperimentConfig(attack="adaptive", methods=("rollout",), adaptive_loss="targeted")
    with pytest.raises(ValueError, match="attack"):
        ExperimentConfig(attack="fgsm")
    with pytest.raises(ValueError, match="adaptive_loss"):
        ExperimentConfig(attack="adaptive", methods=("rollout",), adaptive_loss="kl")


def test_the_oracle_explains_the_clean_image_at_every_radius(tmp_path):
    """The positive control: under attack the oracle's rows are the plain method's clean rows, bit for bit (its
    maps are the clean maps: top-k overlap 1), while the plain rows move."""
    cfg = ExperimentConfig(
        name="oracle",
        methods=("rollout",),
        dds=(DDSSpec("oracle"),),
        radii_255=(0, 32),
        limit=4,
        batch_size=4,
    )
    with _one_thread():
        run_experiment(cfg, tmp_path, progress=False)
    rows = load_rows(tmp_path, cfg).set_index("item_id").sort_index()
    stats = ["correct", "inter_fg", "union_fg", "ap"]

    def at(dds: str, radius: float) -> pd.DataFrame:
        return rows[(rows["dds"] == dds) & (rows["radius_255"] == radius)]

    clean, oracle = at("none", 0.0), at("oracle", 32.0)
    pd.testing.assert_frame_equal(oracle[stats], clean[stats])
    assert oracle["positive_pred"].tolist() == clean["positive_pred"].tolist()
    assert (oracle["topk_overlap"] == 1.0).all() and (oracle["smoothed_pred"] == oracle["clean_pred"]).all()
    assert (at("none", 32.0)["pred"] != at("none", 32.0)["clean_pred"]).any()  # the attack did something


def test_the_oracle_needs_the_clean_images(mini_vit, embedded_batch):
    from harness.explainers import get_explainer
    from harness.smoothing.dds import smooth

    images = embedded_batch[0][:2]
    oracle = smooth(get_explainer("rollout"), None, "oracle")
    with pytest.raises(ValueError, match="pass clean="):
        oracle(mini_vit, images)
    torch.testing.assert_close(
        oracle(mini_vit, images.flip(-1), clean=images), get_explainer("rollout")(mini_vit, images)
    )
