"""The nightly regression plan: steps, threshold, and failure propagation (nothing heavy is run)."""

from __future__ import annotations

import argparse
import sys

import pytest

from harness.cost.nightly import (
    DEFAULT_THRESHOLD,
    Step,
    check_threshold,
    has_saved_benchmarks,
    main,
    plan,
    run_steps,
)


def test_plan_runs_cpu_claims_compared_benchmarks_and_asv():
    steps = {s.name: s.argv for s in plan("25%", "abc123")}
    assert list(steps) == ["claims", "slow tests", "benchmarks", "asv machine", "asv run", "asv publish"]
    assert steps["claims"][-4:] == ["claims", "-m", "not gpu", "-q"]
    assert steps["slow tests"][-5:] == ["tests", "--ignore=tests/bench", "-m", "slow and not gpu", "-q"]
    bench = steps["benchmarks"]
    assert {
        "--benchmark-enable",
        "--benchmark-autosave",
        "--benchmark-compare",
        "--benchmark-compare-fail=mean:25%",
    } <= set(bench)
    at = bench.index("tests/bench")
    assert bench[at + 1 : at + 3] == ["-m", "not gpu"]
    run = steps["asv run"]
    assert "--python=same" in run and run[run.index("--set-commit-hash") + 1] == "abc123"


def test_a_cuda_machine_adds_the_gpu_smoke_run():
    steps = [s.name for s in plan("25%", "abc", gpu=True)]
    assert steps.index("benchmarks") < steps.index("gpu smoke") < steps.index("asv machine")
    (smoke,) = [s for s in plan("25%", "abc", gpu=True) if s.name == "gpu smoke"]
    assert smoke.argv[1:] == ["-m", "harness.cost.gpu_smoke"]


def test_without_a_commit_the_asv_step_fails_with_a_reason(tmp_path):
    (step,) = plan(DEFAULT_THRESHOLD, None, claims=False, bench=False)
    ((_, code, _),) = run_steps([step], root=tmp_path)
    assert code != 0 and "no commit" in " ".join(step.argv)


def test_statistic_of_the_gate_can_be_chosen():
    (step,) = plan("30%", "x", claims=False, asv=False, stat="min")
    assert "--benchmark-compare-fail=min:30%" in step.argv


def test_skips_and_threshold_parsing():
    assert plan("10%", "x", claims=False, bench=False, asv=False) == []
    assert check_threshold(" 30% ") == "30%" and check_threshold("0.05") == "0.05"
    for bad in ("abc", "-5%", "0"):
        with pytest.raises(argparse.ArgumentTypeError):
            check_threshold(bad)


def test_every_step_runs_and_failures_are_reported(tmp_path):
    steps = [
        Step("bad", [sys.executable, "-c", "import sys; sys.exit(3)"]),
        Step("good", [sys.executable, "-c", "print('ran')"]),
    ]
    assert [code for _, code, _ in run_steps(steps, root=tmp_path)] == [3, 0]


def test_dry_run_prints_the_plan(tmp_path, capsys):
    from pytest_benchmark.utils import get_machine_id

    (tmp_path / "asv.conf.json").write_text("{}")
    assert main(["--dry-run", "--threshold", "40%", "--skip-asv", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "saved, not compared" in out and "mean:40%" not in out and "asv" not in out
    saved = tmp_path / ".benchmarks" / get_machine_id()
    saved.mkdir(parents=True)
    (saved / "0001_run.json").write_text("{}")
    assert main(["--dry-run", "--threshold", "40%", "--skip-asv", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "mean:40%" in out and "claims" in out


def test_root_must_be_the_repository(tmp_path):
    with pytest.raises(SystemExit):
        main(["--dry-run", "--root", str(tmp_path)])


def test_first_night_saves_without_comparing(tmp_path):
    from pytest_benchmark.utils import get_machine_id

    (step,) = plan("25%", "x", claims=False, asv=False, compare=False)
    assert "--benchmark-autosave" in step.argv
    assert not any(a.startswith("--benchmark-compare") for a in step.argv)
    assert not has_saved_benchmarks(tmp_path)
    saved = tmp_path / ".benchmarks" / get_machine_id()
    saved.mkdir(parents=True)
    (saved / "0001_run.json").write_text("{}")
    assert has_saved_benchmarks(tmp_path)


def test_help_renders(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "--threshold" in capsys.readouterr().out


def test_paper_claims_run_only_when_their_files_are_present(tmp_path, capsys, monkeypatch):
    import harness.cost.nightly as nightly

    steps = {s.name: s.argv for s in plan("25%", "x", bench=False, asv=False, paper=True)}
    assert steps["paper claims"][-3:] == ["-m", "gpu", "-q"]
    assert "paper claims" not in {s.name for s in plan("25%", "x", bench=False, asv=False)}
    for var in ("FVIT_VIT_B16_WEIGHTS", "FVIT_DEIT_B_WEIGHTS", "FVIT_IMAGENET_SEG", "FVIT_IMAGENET_VAL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    missing = nightly.paper_inputs_missing()
    assert any("FVIT_VIT_B16_WEIGHTS" in m for m in missing) and any("CUDA" in m for m in missing)
    (tmp_path / "asv.conf.json").write_text("{}")
    assert main(["--dry-run", "--skip-asv", "--skip-bench", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "paper-scale claims (`pytest claims -m gpu`) not run" in out and "paper claims:" not in out
    monkeypatch.setattr(nightly, "paper_inputs_missing", lambda: [])
    assert main(["--dry-run", "--skip-asv", "--skip-bench", "--root", str(tmp_path)]) == 0
    assert "paper claims:" in capsys.readouterr().out


def test_missing_optional_extras_are_named_before_the_run(tmp_path, capsys, monkeypatch):
    """The slow step's Captum and Quantus tests skip without their extras; the nightly says so and how to install."""
    import importlib.util

    import harness.cost.nightly as nightly

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "quantus" else real(name, *a))
    assert nightly.missing_extras() == (["quantus"] if real("captum") else ["captum", "quantus"])
    monkeypatch.setattr(nightly, "paper_inputs_missing", lambda: [])
    (tmp_path / "asv.conf.json").write_text("{}")
    assert main(["--dry-run", "--skip-asv", "--skip-bench", "--root", str(tmp_path)]) == 0
    assert "pip install -e .[" in capsys.readouterr().out
    monkeypatch.setattr(nightly, "missing_extras", lambda: [])
    assert main(["--dry-run", "--skip-asv", "--skip-bench", "--root", str(tmp_path)]) == 0
    assert "optional extras" not in capsys.readouterr().out
