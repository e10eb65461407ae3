"""scripts/gpu_smoke.sh: its CPU dry run (tiny stand-ins, the same code path as on CUDA) in the default suite, the
fp16/bf16 agreement check, and the paper-size run on a CUDA device (`-m gpu`, skipped without one)."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from harness.cli import main as cli_main
from harness.cost.gpu_smoke import TOLERANCES, SmokeSettings, compare, run_smoke, write_report

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_smoke.sh"
SMOKE_BUDGET_S = 8 * 60  # the bound for one H100-class GPU


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("smoke")
    argv = [str(SCRIPT), "--device", "cpu", "--tiny", "--threads", "1", "--repeats", "1", "--samples", "1"]
    argv += ["--attack-steps", "1", "--fvit-sigma", "2", "--out", str(out)]
    env = {**os.environ, "FVIT_PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    return done, out / "gpu_tiny.md"


def test_dry_run_exercises_every_variant_dtype_and_explainer(dry_run):
    done, report = dry_run
    assert done.returncode == 0, done.stderr[-2000:]
    text = report.read_text()
    for variant in ("carlini", "fvit", "re", "noise_only", "denoise_only"):
        for dtype in ("float32", "float16", "bfloat16"):
            assert re.search(rf"\| {variant} \| {dtype} \| .* \| ok \|", text), (variant, dtype)
    assert text.count("| map: ") == 8 and "ms per image" in text and "GiB" in text
    assert "says nothing of CUDA's fp16/bf16 numerics" in text  # the CPU run says what it cannot show
    assert "wrote" in done.stdout and "Tiny stand-in models" in text


def test_the_measured_seconds_feed_cost_plan(dry_run, tmp_path):
    """The command the report prints is `fvit-bench cost --plan`, and its total is the report's measured row."""
    text = dry_run[1].read_text()
    command = re.search(r"fvit-bench cost --plan (.*?)  # float32 UNet", text).group(1).split()
    hours = float(re.search(r"\| measured, float32 UNet \| ([0-9.]+) \|", text).group(1))
    assert cli_main(["cost", "--plan", *command, "--out", str(tmp_path)]) == 0
    planned = pd.read_csv(tmp_path / "paper_plan.csv").iloc[-1]["gpu_hours"]
    assert planned == pytest.approx(hours, abs=0.006)  # the report rounds to 0.01 h


def test_disagreement_and_overflow_fail_the_comparison():
    ref = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    maps = {"a": torch.rand(2, 8, 8), "b": torch.rand(2, 8, 8)}
    tol_img, tol_map = TOLERANCES["float16"]
    assert compare("float16", ref + tol_img / 2, maps, ref, maps)["problem"] == ""
    assert "purified images differ" in compare("float16", ref + 2 * tol_img, maps, ref, maps)["problem"]
    overflow = ref.clone()
    overflow[0, 0, 0, 0] = math.inf
    assert "purified images differ" in compare("float16", overflow, maps, ref, maps)["problem"]
    moved = {k: (v + 2 * tol_map).clamp(max=1) if k == "a" else v + 2 * tol_map for k, v in maps.items()}
    result = compare("float16", ref, moved, ref, maps)
    assert "maps differ" in result["problem"] and result["maps_worst"][0] in maps


def test_a_cpu_without_device_is_told_how_to_dry_run(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="--device cpu --tiny"):
        run_smoke(SmokeSettings())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the paper-size smoke run needs a GPU")
def test_paper_smoke_on_cuda():
    """ViT-B/16 + ADM-256 (random weights) on the GPU, fp32/fp16/bf16; writes reports/bench/gpu.md."""
    result = run_smoke(SmokeSettings(device="cuda"))
    path = write_report(result, ROOT / "reports" / "bench")
    assert not result.failures, f"see {path}: " + "; ".join(result.failures)
    assert set(result.unet_seconds) == {"float32", "float16", "bfloat16"} and result.peak_memory_gib > 0
    assert result.wall_seconds < SMOKE_BUDGET_S, f"{result.wall_seconds:.0f} s > {SMOKE_BUDGET_S} s"
