"""A resumed run is the run it claims to be; every bad input gets one clear line (issue 11).

Each scenario of the issue: the limit growing and shrinking, files swapped behind a path, a refused
resume leaving config.json alone, 0 vs 0.0, exact radius keys, one writer per store, corrupt inputs,
bad output folders, Ctrl-C, wrong YAML types, bad values, images in [0,255], a denoiser folder without
weights and a plug-in with the wrong number of maps. CLI failures are one line without a traceback.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from harness.cli import main
from harness.runner import experiment
from harness.runner.config import ConfigError, DDSSpec, ExperimentConfig, config_from_dict, load_config
from harness.runner.experiment import load_rows, merge_shards, run_experiment
from harness.runner.identity import path_identity, run_identity
from harness.runner.store import RowStore, StoreError, check_identity

TINY = ExperimentConfig(
    name="tiny",
    methods=("raw_attention",),
    dds=(),
    radii_255=(0, 8),
    tasks=("segmentation",),
    attack_steps=2,
    limit=6,
    batch_size=4,
)


def _cli(capsys, *argv: str) -> tuple[int, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's errors exit (one line, see harness.cli._Parser)
        code = exc.code
    err = capsys.readouterr().err
    return code, err


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code != 0
    lines = [line for line in err.strip().splitlines() if "map/s]" not in line]  # tqdm's progress bar aside
    assert len(lines) == 1 and lines[0].startswith("fvit-bench: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# --- the limit -----------------------------------------------------------------------------------


def test_limit_may_grow_and_shrink_and_reports_only_its_items(tmp_path):
    out, cfg = tmp_path / "run", TINY.replace(radii_255=(0,))
    run_experiment(cfg, out, progress=False)
    assert load_rows(out, cfg)["item_id"].nunique() == 6
    grown = cfg.replace(limit=8)
    run_experiment(grown, out, progress=False)
    rows8 = load_rows(out, grown)
    assert rows8["item_id"].nunique() == 8
    run_experiment(grown, tmp_path / "fresh8", progress=False)
    pd.testing.assert_frame_equal(rows8, load_rows(tmp_path / "fresh8", grown))
    shrunk = cfg.replace(limit=2)
    run_experiment(shrunk, out, progress=False)
    rows2 = load_rows(out, shrunk)
    assert rows2["item_id"].nunique() == 2
    run_experiment(shrunk, tmp_path / "fresh2", progress=False)
    pd.testing.assert_frame_equal(rows2, load_rows(tmp_path / "fresh2", shrunk))


# --- run identity --------------------------------------------------------------------------------


def test_refused_resume_names_each_difference_and_leaves_config_json(tmp_path):
    run_experiment(TINY.replace(limit=2), tmp_path, progress=False)
    before = (tmp_path / "config.json").read_bytes()
    with pytest.raises(StoreError, match=r"config\.seed: stored 0, this run 1.*config\.topk"):
        run_experiment(TINY.replace(limit=2, seed=1, topk=0.2), tmp_path, progress=False)
    assert (tmp_path / "config.json").read_bytes() == before


def test_thread_count_is_part_of_the_identity(tmp_path):
    run_experiment(TINY.replace(limit=2, radii_255=(0,)), tmp_path, progress=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        with pytest.raises(StoreError, match=f"torch_threads: stored {threads}, this run {threads + 1}"):
            run_experiment(TINY.replace(limit=2, radii_255=(0,)), tmp_path, progress=False)
    finally:
        torch.set_num_threads(threads)


def test_swapped_weights_behind_the_same_path_are_refused(tmp_path):
    from harness.models.mini import MINI_VIT_DIR

    weights = tmp_path / "vit"
    shutil.copytree(MINI_VIT_DIR, weights)
    cfg = TINY.replace(limit=2, radii_255=(0,), weights=str(weights))
    run_experiment(cfg, tmp_path / "run", progress=False)
    config = weights / "config.json"
    config.write_text(config.read_text() + "\n")  # another file, same path
    with pytest.raises(StoreError, match=r"inputs\.weights\."):
        run_experiment(cfg, tmp_path / "run", progress=False)


def test_file_swapped_behind_an_environment_variable_changes_the_identity(tmp_path, monkeypatch):
    a, b = tmp_path / "a.mat", tmp_path / "b.mat"
    a.write_bytes(b"x" * 300_000)
    b.write_bytes(b"x" * 299_999 + b"y")
    cfg = ExperimentConfig(dataset="imagenet-seg", dds=())
    monkeypatch.setenv("FVIT_IMAGENET_SEG", str(a))
    identity = run_identity(cfg, torch.device("cpu"), 64, 10)
    store = RowStore(tmp_path / "rows.sqlite", cfg.config_hash(), identity)
    store.close()
    monkeypatch.setenv("FVIT_IMAGENET_SEG", str(b))
    with pytest.raises(StoreError, match=r"inputs\.dataset\.path"):
        check_identity(tmp_path / "rows.sqlite", run_identity(cfg, torch.device("cpu"), 64, 10))
    shutil.copy(b, a)  # same path, same size, other content at the end
    monkeypatch.setenv("FVIT_IMAGENET_SEG", str(a))
    with pytest.raises(StoreError, match=r"inputs\.dataset\.fingerprint"):
        check_identity(tmp_path / "rows.sqlite", run_identity(cfg, torch.device("cpu"), 64, 10))


def test_fingerprint_sees_a_change_in_the_middle_of_a_large_file(tmp_path):
    path = tmp_path / "big.bin"
    data = bytearray(8 * 1024 * 1024)
    path.write_bytes(bytes(data))
    first = path_identity(path)
    data[len(data) // 2] = 1  # a sampled block: the middle of 16 evenly spaced ones
    data[len(data) // 15 * 7 + 10] = 1
    path.write_bytes(bytes(data))
    assert path_identity(path)["fingerprint"] != first["fingerprint"]


def test_yaml_and_cli_numbers_hash_alike_and_shards_merge(tmp_path, capsys):
    yaml_cfg = tmp_path / "c.yaml"
    yaml_cfg.write_text(
        "methods: [raw_attention]\ndds: []\nradii_255: [0]\ntasks: [segmentation]\n"
        "limit: 4\nbatch_size: 2\nattack_steps: 2\n"
    )
    cfg = load_config(yaml_cfg)
    cli_cfg = cfg.replace(radii_255=(0.0,), limit=4)
    assert cfg.config_hash() == cli_cfg.config_hash()
    run_experiment(cfg, tmp_path, shard=0, num_shards=2, progress=False)
    run_experiment(cli_cfg, tmp_path, shard=1, num_shards=2, progress=False)
    merge_shards(tmp_path, cfg, 2)
    assert load_rows(tmp_path, cfg)["item_id"].nunique() == 4


def test_a_failed_merge_leaves_nothing_behind(tmp_path):
    cfg = TINY.replace(limit=4, batch_size=2, radii_255=(0,))
    run_experiment(cfg, tmp_path, shard=0, num_shards=2, progress=False)
    other = tmp_path / "other"
    run_experiment(cfg.replace(attack_steps=3), other, shard=1, num_shards=2, progress=False)
    shutil.copy(other / "rows.shard001of002.sqlite", tmp_path / "rows.shard001of002.sqlite")
    with pytest.raises(StoreError, match="attack_steps"):
        merge_shards(tmp_path, cfg, 2)
    assert not (tmp_path / "rows.sqlite").exists()
    assert not [p for p in tmp_path.iterdir() if "merging" in p.name]
    (tmp_path / "rows.shard001of002.sqlite").unlink()
    run_experiment(cfg, tmp_path, shard=1, num_shards=2, progress=False)
    merge_shards(tmp_path, cfg, 2)  # the next merge is not blocked
    assert load_rows(tmp_path, cfg)["item_id"].nunique() == 4


def test_radius_keys_are_exact(tmp_path):
    cfg = TINY.replace(limit=2, radii_255=(0, 0.0004))
    run_experiment(cfg, tmp_path, progress=False)
    rows = load_rows(tmp_path, cfg)
    assert sorted(rows["radius_255"].unique()) == [0.0, 0.0004]
    assert len(rows) == 2 * 2


# --- one writer ----------------------------------------------------------------------------------


def test_a_second_writer_exits_at_once(tmp_path, capsys):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from filelock import FileLock; "
            f"lock = FileLock({str(tmp_path / 'rows.sqlite.lock')!r}); lock.acquire(); "
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        start = time.monotonic()
        code, err = _cli(
            capsys,
            "run",
            "--methods",
            "raw_attention",
            "--dds",
            "",
            "--radii",
            "0",
            "--limit",
            "2",
            "--out",
            str(tmp_path),
        )
        assert time.monotonic() - start < 60
        _one_line_error(code, err, "another process is writing to", "rows.sqlite")
    finally:
        holder.kill()
        holder.wait()


# --- corrupt inputs, bad folders -----------------------------------------------------------------


def test_corrupt_mat_file_is_named(tmp_path, capsys):
    bad = tmp_path / "gtsegs_ijcv.mat"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    code, err = _cli(
        capsys,
        "run",
        "--dataset",
        "imagenet-seg",
        "--dataset-root",
        str(bad),
        "--dds",
        "",
        "--out",
        str(tmp_path / "o"),
    )
    _one_line_error(code, err, str(bad), "HDF5")


def test_corrupt_jpeg_is_named_with_its_path(tmp_path):
    from harness.data.imagenet_val import ImageNetVal
    from harness.data.item import CorruptItemError

    root = tmp_path / "val"
    root.mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "ILSVRC2012_val_00000001.JPEG")
    (root / "ILSVRC2012_val_00000002.JPEG").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (tmp_path / "labels.txt").write_text("ILSVRC2012_val_00000001.JPEG 0\nILSVRC2012_val_00000002.JPEG 1\n")
    ds = ImageNetVal(root, labels_file=tmp_path / "labels.txt", expected_classes=None)
    assert ds[0].image.shape == (3, 224, 224)
    with pytest.raises(CorruptItemError, match="ILSVRC2012_val_00000002.JPEG"):
        ds[1]


class _OneCorrupt(torch.utils.data.Dataset):
    """The embedded test split with item 1 unreadable."""

    def __init__(self):
        from harness.data.embedded import EmbeddedShapes

        self.inner = EmbeddedShapes("test")

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        from harness.data.item import CorruptItemError

        if i == 1:
            raise CorruptItemError("/data/broken.JPEG", "cannot identify image file")
        return self.inner[i]


def test_corrupt_image_stops_or_is_skipped_and_recorded(tmp_path, monkeypatch):
    from harness.data.item import CorruptItemError

    monkeypatch.setattr(experiment, "get_dataset", lambda *a, **k: _OneCorrupt())
    cfg = TINY.replace(limit=4, radii_255=(0,))
    with pytest.raises(CorruptItemError, match="broken.JPEG"):
        run_experiment(cfg, tmp_path / "stop", progress=False)
    skip = cfg.replace(corrupt_images="skip")
    run_experiment(skip, tmp_path / "skip", progress=False)
    rows = load_rows(tmp_path / "skip", skip)
    assert rows["item_id"].nunique() == 3
    assert [s["path"] for s in experiment.skipped_items(tmp_path / "skip")] == ["/data/broken.JPEG"]


def test_corrupt_store_is_named(tmp_path, capsys):
    (tmp_path / "rows.sqlite").write_bytes(b"garbage" * 1000)
    code, err = _cli(
        capsys, "run", "--methods", "raw_attention", "--dds", "", "--radii", "0", "--limit", "2", "--out", str(tmp_path)
    )
    _one_line_error(code, err, "rows.sqlite", "not a readable results store")


def test_out_that_is_a_file_or_read_only(tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    args = ["run", "--methods", "raw_attention", "--dds", "", "--radii", "0", "--limit", "2"]
    _one_line_error(*_cli(capsys, *args, "--out", str(a_file)), "is a file")
    _one_line_error(*_cli(capsys, *args, "--out", str(a_file / "sub")), "cannot create the output folder")
    monkeypatch.setattr(experiment.os, "access", lambda *a: False)  # root ignores permission bits
    _one_line_error(*_cli(capsys, *args, "--out", str(tmp_path / "ro")), "not writable")


def test_disk_full_is_one_line(tmp_path, capsys, monkeypatch):
    import sqlite3

    def full(self, unit, payload):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(RowStore, "_insert", full)
    code, err = _cli(
        capsys, "run", "--methods", "raw_attention", "--dds", "", "--radii", "0", "--limit", "2", "--out", str(tmp_path)
    )
    _one_line_error(code, err, "disk is full", "rerun the same command to resume")


def test_ctrl_c_says_how_many_units_are_saved(tmp_path, capsys, monkeypatch):
    real, calls = experiment._run_chunk, []

    def interrupt_second(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(experiment, "_run_chunk", interrupt_second)
    code, err = _cli(
        capsys,
        "run",
        "--methods",
        "raw_attention",
        "--dds",
        "",
        "--radii",
        "0",
        "--limit",
        "8",
        "--batch-size",
        "4",
        "--out",
        str(tmp_path),
        "--tasks",
        "segmentation",
    )
    assert code == 130 and "Traceback" not in err
    store = tmp_path / "rows.sqlite"
    assert err.strip().splitlines()[-1] == (
        f"fvit-bench: interrupted: 1 of 2 units are saved in {store}; rerun the same command to resume"
    )


# --- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("limit: ten\n", ["limit = 'ten'", "integer"]),
        ("radii_255: 8\n", ["radii_255 = 8", "list"]),
        ("methods: rollout\n", ["methods = 'rollout'", "list"]),
        ("dds: carlini\n", ["dds = 'carlini'", "list"]),
        ("attack_steps: -3\n", ["attack_steps = -3", "greater than or equal to 1"]),
        ("dds:\n  - variant: carlini\n    samples: 2.5\n", ["dds.0.samples = 2.5", "integer"]),
        ("limit: 4\nlimit: 5\n", ["key 'limit' is given twice"]),
        ("radii_255: [0, .inf]\n", ["radii_255.1", "finite"]),
    ],
)
def test_yaml_errors_name_field_value_and_rule(tmp_path, capsys, text, needles):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_config(path)
    _one_line_error(*_cli(capsys, "run", "--config", str(path), "--out", str(tmp_path / "o")), str(path), *needles)


def test_cli_value_errors_are_one_line(tmp_path, capsys):
    out = str(tmp_path / "o")
    _one_line_error(*_cli(capsys, "run", "--radii", "", "--out", out), "radii_255", "at least one radius")
    _one_line_error(*_cli(capsys, "run", "--samples", "2.5", "--out", out), "--samples", "invalid int value")
    _one_line_error(*_cli(capsys, "run", "--radii", "0,x", "--out", out), "comma-separated numbers")
    _one_line_error(*_cli(capsys, "run", "--dds", "nope", "--out", out), "unknown DDS variant 'nope'")
    _one_line_error(*_cli(capsys, "run", "--methods", "nope", "--out", out), "unknown method")
    _one_line_error(*_cli(capsys, "frobnicate"), "invalid choice")
    assert not (tmp_path / "o").exists()


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ConfigError):
        main(["run", "--radii", "", "--out", str(tmp_path), "--debug"])


def test_config_round_trips_and_normalises():
    cfg = config_from_dict({"radii_255": [0, 8], "dds": [{"variant": "carlini", "samples": 2}]})
    assert cfg.radii_255 == (0.0, 8.0) and cfg.dds == (DDSSpec("carlini", samples=2),)
    assert config_from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict()))) == cfg
    with pytest.raises(ConfigError, match="radius twice"):
        config_from_dict({"radii_255": [0, 0.0]})


# --- the API -------------------------------------------------------------------------------------


def test_images_in_0_255_are_refused(mini_vit, embedded_batch):
    from harness.explainers.registry import explain

    images = embedded_batch[0][:2]
    with pytest.raises(ValueError, match=r"\[0,1\] pixel space.*divide 0-255 images by 255"):
        explain("raw_attention", mini_vit, images * 255)


def test_plugin_must_return_one_map_per_image(mini_vit, embedded_batch):
    from harness.explainers import registry

    @registry.register("one_map_only_test", class_specific=False)
    def one_map(model, images, target):
        return torch.rand(1, model.grid_size**2)

    try:
        with pytest.raises(ValueError, match="one_map_only_test: returned 1 map.* for 4 image"):
            registry.explain("one_map_only_test", mini_vit, embedded_batch[0][:4])
    finally:
        registry._REGISTRY.pop("one_map_only_test")


def test_denoiser_loads_are_strict(tmp_path):
    from safetensors.torch import load_file, save_file

    from harness.models.denoiser import load_denoiser
    from harness.models.mini import MINI_DENOISER_DIR

    folder = tmp_path / "den"
    folder.mkdir()
    shutil.copy(MINI_DENOISER_DIR / "config.json", folder / "config.json")
    with pytest.raises(FileNotFoundError, match="no weights"):
        load_denoiser(folder)
    weights = load_file(str(MINI_DENOISER_DIR / "diffusion_pytorch_model.safetensors"))
    weights.pop(sorted(weights)[0])
    save_file(weights, str(folder / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(ValueError, match="missing keys"):
        load_denoiser(folder)


# --- degenerate maps -----------------------------------------------------------------------------


def test_constant_maps_have_no_topk_overlap():
    from harness.metrics.faithfulness import topk_overlap
    from harness.runner.aggregate import faithfulness_table

    a = torch.rand(3, 8, 8)
    b = a.clone()
    a[1] = 0.0
    b[1] = 0.0  # two all-zero maps: tie-breaking would give 1.0
    b[2] = 0.5
    overlap = topk_overlap(a, b, 0.1)
    assert overlap[0] == 1.0 and torch.isnan(overlap[1:]).all()
    rows = pd.DataFrame(
        {
            "method": "m",
            "dds": "none",
            "radius_255": 8.0,
            "topk_overlap": [0.5, None, 0.7],
            "pred": 1,
            "clean_pred": 1,
            "label": 1,
        }
    )
    table = faithfulness_table(rows)
    assert table["topk_overlap"].item() == pytest.approx(0.6) and table["topk_undefined"].item() == 1


# --- devices and the smoothed prediction -------------------------------------------------------------


def test_device_default_and_dds_batch(monkeypatch):
    from harness.runner import devices

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.resolve_device(None) == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA device"):
        devices.resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.resolve_device(None) == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10e9, 80e9))
    assert devices.dds_batch_for(torch.device("cuda"), 256) == 4  # half of 10 GB / 1.2 GB per copy
    assert devices.dds_batch_for(torch.device("cuda"), 64) == 64
    assert devices.dds_batch_for(torch.device("cpu"), 256) == 64
    assert devices.dds_batch_for(torch.device("cuda"), 256, given=3) == 3


def test_run_puts_models_and_dds_on_the_configured_device(tmp_path, monkeypatch, capsys):
    """A `meta` device: every module is moved there and DDS gets the batch size, before any unit runs."""
    seen = {}

    def capture(cfg, dataset, model, explainers, store, *args):
        seen.update(model=model, explainers=explainers, identity=store.identity)

    monkeypatch.setattr(experiment, "_run_units", capture)
    monkeypatch.setattr(experiment, "resolve_device", lambda name: torch.device(name))
    cfg = TINY.replace(dds=(DDSSpec("carlini", sigma=0.1, samples=2),), device="meta", dds_batch=3, limit=2)
    run_experiment(cfg, tmp_path, progress=True)
    assert "device meta" in capsys.readouterr().out
    assert {p.device.type for p in seen["model"].parameters()} == {"meta"}
    smoothed = seen["explainers"][("raw_attention", "carlini")]
    assert {p.device.type for p in smoothed.denoiser.parameters()} == {"meta"} and smoothed.max_batch == 3
    assert seen["identity"]["device"] == "meta" and seen["identity"]["dds_batch"] == 3


def test_dds_rows_carry_the_smoothed_prediction(tmp_path):
    cfg = TINY.replace(dds=(DDSSpec("carlini", sigma=0.1, samples=3),), limit=2, radii_255=(0,))
    run_experiment(cfg, tmp_path, progress=False)
    rows = load_rows(tmp_path, cfg)
    plain, dds = rows[rows["dds"] == "none"], rows[rows["dds"] == "carlini"]
    assert plain["smoothed_pred"].isna().all()
    assert dds["smoothed_pred"].notna().all() and dds["smoothed_pred"].between(0, 9).all()


def test_smoothed_prediction_is_the_majority_vote():
    from harness.runner.experiment import PurifiedCache
    from harness.smoothing.dds import SmoothedExplainer

    explainer = SmoothedExplainer(lambda *a: None, None, "noise_only", sigma=0.1, samples=3)
    cache = PurifiedCache()
    key = ("t", explainer.variant, explainer.sigma, 3, explainer.seed, id(None), False)  # False: no attack per trial
    cache._store[key] = (None, torch.tensor([2, 5, 5, 7, 1, 4]))
    assert cache.smoothed_pred(explainer, "t").tolist() == [5, 1]  # a three-way tie goes to the lowest class


@pytest.mark.gpu
def test_embedded_pipeline_on_cuda_matches_cpu(tmp_path):
    """Tolerance: the clean plain rows (no random draws) match CPU's to 1e-4 absolute per statistic with equal
    predictions; PGD starts and DDS noise come from per-device generators, so attacked and DDS rows are only
    checked to exist and lie in range."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    cfg = TINY.replace(dds=(DDSSpec("carlini", sigma=32 / 255, samples=2),), limit=4, methods=("rollout",))
    run_experiment(cfg.replace(device="cpu"), tmp_path / "cpu", progress=False)
    run_experiment(cfg.replace(device="cuda"), tmp_path / "cuda", progress=False)
    cpu, gpu = load_rows(tmp_path / "cpu", cfg), load_rows(tmp_path / "cuda", cfg)
    assert len(cpu) == len(gpu)
    clean = (cpu["radius_255"] == 0) & (cpu["dds"] == "none")
    a, b = cpu[clean].reset_index(drop=True), gpu[clean.to_numpy()].reset_index(drop=True)
    assert (a["pred"] == b["pred"]).all()
    for col in ("correct", "inter_fg", "union_fg", "ap"):
        np.testing.assert_allclose(a[col], b[col], atol=1e-4 * max(1.0, float(a[col].abs().max())))
    assert gpu["topk_overlap"].dropna().between(0, 1).all()


def test_identity_is_recorded_in_the_store(tmp_path):
    run_experiment(TINY.replace(limit=2, radii_255=(0,)), tmp_path, progress=False)
    from harness.runner.store import read_meta

    identity = json.loads(read_meta(tmp_path / "rows.sqlite")["identity"])
    assert identity["device"] == "cpu" and identity["torch_threads"] == torch.get_num_threads()
    assert identity["torch_version"] == torch.__version__ and identity["inputs"]["weights"]["fingerprint"]
    assert identity["config"]["radii_255"] == [0.0] and "limit" not in identity["config"]
    from harness.runner.main import write_tables

    cfg = TINY.replace(limit=2, radii_255=(0,))
    md = write_tables(cfg, tmp_path, load_rows(tmp_path, cfg))["segmentation"].read_text()
    assert f"with {torch.get_num_threads()} torch thread(s)" in md


def test_report_intervals_leave_undefined_topk_out():
    from harness.report.intervals import interval

    rows = pd.DataFrame({"topk_overlap": [0.2, None, 0.4, 0.6]})
    lo, hi = interval(rows, "topk_overlap")
    assert 0.2 <= lo <= hi <= 0.6
