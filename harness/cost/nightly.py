"""Nightly regression run: CPU claims, benchmarks compared with the last saved run, asv history.

Steps (each a subprocess run in the repository root, --root or the current directory; the run fails
if any step fails, and every step runs even after a failure):
1. claims      ``pytest claims -m "not gpu"``: a failed claim fails the night. Then, when the
   paper-scale files are present (the FVIT_* variables README names), ``pytest claims -m gpu``; when
   they are not, the run says so and names what is missing. Then the unit tests the default suite
   leaves out, ``pytest tests --ignore=tests/bench -m "slow and not gpu"`` (e.g. the two-process torchrun shard run,
   the Captum run through DDS and the claims, the Quantus cross-checks: these need the extras captum and quantus,
   and skip, as the run says beforehand, where they are not installed).
2. benchmarks  ``pytest tests/bench -m "not gpu" --benchmark-enable --benchmark-autosave
   --benchmark-compare --benchmark-compare-fail=mean:<threshold>``: compared with the last run saved in
   .benchmarks/<machine id>/; a mean slowdown beyond the threshold fails the session. The first night
   (no saved run: pytest-benchmark would reject --benchmark-compare-fail) only saves its run.
   With a CUDA device, then the GPU smoke run (``python -m harness.cost.gpu_smoke``, scripts/gpu_smoke.sh:
   the paper architectures on the GPU, fp32/fp16/bf16, reports/bench/gpu.md); ``--skip-gpu-smoke`` leaves it out.
3. asv         ``asv machine --yes`` (once), ``asv run --python=same --set-commit-hash <HEAD>``,
   ``asv publish``: the history site in .asv/html (``asv preview`` serves it): cost (benchmarks/bench_cost.py)
   beside verdict drift (benchmarks/bench_verdicts.py: each embedded claim's effect, interval and outcome counts,
   read from reports/claims/verdicts.csv, which step 1 wrote at the same commit).

Threshold: mean +25% by default (--threshold, --stat). The gate is for regressions that matter here
(an extra UNet call per DDS sample, a lost no_grad, attention kept in autograd), which cost far more
than 25%, while run-to-run noise of a mean over 5 to 20 rounds on a quiet, dedicated machine is about
5-10%. It needs that quiet machine: on a shared, loaded one, two runs of the SAME code differed by
40% to 12x in mean (2 cores, load average 7, trainings running); there use ``--stat min`` (interference
only ever adds time) or a larger threshold.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_THRESHOLD = "25%"


@dataclass(frozen=True)
class Step:
    name: str
    argv: list[str]
    ok_codes: tuple[int, ...] = (0,)


def head_commit(root: Path) -> str | None:
    """The sha of HEAD, or None when the repository has no commit (or is no git repository)."""
    out = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=root, capture_output=True, text=True)
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and sha else None


def has_saved_benchmarks(root: Path) -> bool:
    """Whether pytest-benchmark saved a run for this machine in root/.benchmarks (what --benchmark-compare reads).

    Without one, --benchmark-compare-fail is a usage error (pytest exits 4), so the first night only saves.
    """
    from pytest_benchmark.utils import get_machine_id

    return any((root / ".benchmarks" / get_machine_id()).glob("*.json"))


def paper_inputs_missing() -> list[str]:
    """What the paper-scale claims still need (empty: at least one of them can run here)."""
    from harness.claims.paper import missing_inputs
    from harness.claims.registry import load_claims

    missing: list[str] = []
    for claim in load_claims():
        if claim.world != "paper":
            continue
        needs = missing_inputs(claim)
        if not needs:
            return []
        missing.extend(m for m in needs if m not in missing)
    return missing


# Optional extras whose tests the slow step runs (they skip, with the reason, where the extra is absent).
NIGHTLY_EXTRAS = {"captum": "captum", "quantus": "quantus"}


def missing_extras() -> list[str]:
    """The optional extras (pyproject.toml) whose package is not importable here."""
    import importlib.util

    return [extra for extra, module in NIGHTLY_EXTRAS.items() if importlib.util.find_spec(module) is None]


def check_threshold(threshold: str) -> str:
    """'25%' or '0.05' (seconds): the forms --benchmark-compare-fail accepts after 'mean:'."""
    text = threshold.strip()
    try:
        value = float(text[:-1] if text.endswith("%") else text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"threshold must be like 25% or 0.05 (seconds), got {threshold!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"threshold must be positive, got {threshold!r}")
    return text


def plan(
    threshold: str,
    commit: str | None,
    claims: bool = True,
    bench: bool = True,
    asv: bool = True,
    compare: bool = True,
    stat: str = "mean",
    paper: bool = False,
    gpu: bool = False,
) -> list[Step]:
    """The nightly steps, in order. asv needs a commit: without one its step is an error you can read.

    compare=False (no earlier saved benchmark run) saves the benchmarks without comparing them;
    paper=True adds the paper-scale claims (`pytest claims -m gpu`) after the CPU ones; gpu=True (a CUDA
    device here) adds the paper-size GPU smoke run (scripts/gpu_smoke.sh, docs/gpu.md) after the benchmarks.
    """
    py = sys.executable
    steps = []
    if claims:
        steps.append(Step("claims", [py, "-m", "pytest", "claims", "-m", "not gpu", "-q"]))
        if paper:
            steps.append(Step("paper claims", [py, "-m", "pytest", "claims", "-m", "gpu", "-q"]))
        slow = [py, "-m", "pytest", "tests", "--ignore=tests/bench", "-m", "slow and not gpu", "-q"]
        steps.append(Step("slow tests", slow))  # tests/bench runs in the benchmarks step
    if bench:
        gate = ["--benchmark-compare", f"--benchmark-compare-fail={stat}:{threshold}"] if compare else []
        steps.append(
            Step(
                "benchmarks",
                [
                    py,
                    "-m",
                    "pytest",
                    "tests/bench",
                    "-m",
                    "not gpu",
                    "-q",
                    "--benchmark-enable",
                    "--benchmark-autosave",
                    *gate,
                    "--benchmark-columns=min,mean,stddev,rounds",
                ],
            )
        )
    if gpu:
        steps.append(Step("gpu smoke", [py, "-m", "harness.cost.gpu_smoke"]))
    if asv:
        if commit is None:
            steps.append(
                Step(
                    "asv",
                    [
                        py,
                        "-c",
                        "import sys; sys.exit('asv: the repository has no commit; "
                        "asv records results per commit (--set-commit-hash)')",
                    ],
                )
            )
        else:
            asv_cmd = [py, "-m", "asv"]
            steps.append(Step("asv machine", [*asv_cmd, "machine", "--yes"]))
            steps.append(
                Step("asv run", [*asv_cmd, "run", "--python=same", "--set-commit-hash", commit, "--show-stderr"])
            )
            steps.append(Step("asv publish", [*asv_cmd, "publish"]))
    return steps


def run_steps(steps: Sequence[Step], root: Path) -> list[tuple[Step, int, float]]:
    """Run every step (a failure does not stop the later ones); return (step, exit code, seconds)."""
    results = []
    for step in steps:
        print(f"\n=== nightly: {step.name}: {shlex.join(step.argv)}", flush=True)
        start = time.perf_counter()
        code = subprocess.run(step.argv, cwd=root).returncode
        results.append((step, code, time.perf_counter() - start))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nightly",
        description="Nightly regression run: CPU claims, pytest-benchmark comparison with the last saved "
        "run, asv run + publish. Exits 1 if any step failed.",
    )
    parser.add_argument(
        "--threshold",
        type=check_threshold,
        default=DEFAULT_THRESHOLD,
        help=f"slowdown (of --stat) that fails the benchmarks step: N%% or seconds (default "
        f"{DEFAULT_THRESHOLD.replace('%', '%%')})",
    )
    parser.add_argument(
        "--stat",
        choices=["mean", "min", "median"],
        default="mean",
        help="statistic compared with the last run (default mean; min resists interference "
        "from other work on a shared machine)",
    )
    parser.add_argument("--skip-claims", action="store_true", help="do not run the claims")
    parser.add_argument("--skip-bench", action="store_true", help="do not run the pytest-benchmark step")
    parser.add_argument("--skip-asv", action="store_true", help="do not run asv")
    parser.add_argument(
        "--skip-gpu-smoke", action="store_true", help="do not run the GPU smoke run (run only with a CUDA device)"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the steps and exit")
    parser.add_argument(
        "--root", type=Path, default=Path.cwd(), help="repository root to run in (default: the current directory)"
    )
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if not (root / "asv.conf.json").is_file():
        parser.error(f"{root} is not the fvit-bench repository root (no asv.conf.json): pass --root")
    commit, compare = head_commit(root), has_saved_benchmarks(root)
    if not args.skip_bench and not compare:
        print("nightly: no saved benchmark run for this machine in .benchmarks/: this run is saved, not compared")
    extras = missing_extras() if not args.skip_claims else []
    if extras:
        print(
            f"nightly: the tests of the optional extras {', '.join(extras)} will skip (Captum explainers, Quantus "
            f"cross-checks): install them with `pip install -e .[{','.join(extras)}]`"
        )
    missing = paper_inputs_missing() if not args.skip_claims else []
    if missing:
        print("nightly: paper-scale claims (`pytest claims -m gpu`) not run: inputs missing: " + "; ".join(missing))
    import torch

    gpu = not args.skip_gpu_smoke and torch.cuda.is_available()
    if not args.skip_gpu_smoke and not gpu:
        print("nightly: GPU smoke run (scripts/gpu_smoke.sh) not run: no CUDA device (its CPU dry run is a unit test)")
    steps = plan(
        args.threshold,
        commit,
        not args.skip_claims,
        not args.skip_bench,
        not args.skip_asv,
        compare,
        args.stat,
        paper=not args.skip_claims and not missing,
        gpu=gpu,
    )
    if args.dry_run:
        for step in steps:
            print(f"{step.name}: {shlex.join(step.argv)}")
        return 0
    results = run_steps(steps, root)
    print("\n=== nightly summary")
    for step, code, seconds in results:
        status = "ok" if code in step.ok_codes else f"FAILED (exit {code})"
        print(f"{step.name:12s} {status:18s} {seconds:7.1f} s")
    if not args.skip_asv and commit:
        print("asv site: .asv/html (serve it with `asv preview`)")
    return 0 if all(code in step.ok_codes for step, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
