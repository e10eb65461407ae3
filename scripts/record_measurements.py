#!/usr/bin/env python3
"""Append a dated measurement entry to docs/measurements.md (newest first), from the outputs themselves.

Reads what a measurement produced instead of numbers typed by hand:
- `--suite-log FILE`: a pytest run's output; its closing line gives the counts and the seconds in pytest;
- `--run-dir DIR` (with `--run-seconds S`, the wall time of `fvit-bench run`): the run's verdicts.csv counts;
- `--claims-verdicts FILE` (default reports/claims/verdicts.csv, when `--suite-log` is given): the suite's
  verdict counts, the controls' and the oracle's power.
The entry names the date, the commit, the machine (cores, CPU model, torch threads) and `--note` lines.

    python scripts/record_measurements.py --suite-log suite.log --note "fresh clone, first run after install"
    python scripts/record_measurements.py --run-dir reports/embedded --run-seconds 512
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET = ROOT / "docs" / "measurements.md"
HEADER = (
    "# Measurements\n\n"
    "Written by `scripts/record_measurements.py` from the outputs it names (pytest's closing line, the verdict\n"
    "tables); do not edit by hand. Newest first. Times are wall-clock seconds on the machine named; verdict\n"
    "counts are over the claims without controls unless a line says otherwise.\n"
)
CLOSING = re.compile(r"=+ (?P<counts>.*?) in (?P<seconds>[\d.]+)s")


def machine() -> str:
    import torch

    from harness.runner.devices import cpu_model

    model = cpu_model()

    return (
        f"{os.cpu_count()} cores{f' ({model})' if model else ''}, {platform.machine()}, Python "
        f"{platform.python_version()}, torch {torch.__version__}"
    )


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=ROOT).stdout
    return (out.stdout.strip() or "unknown") + (" (uncommitted changes)" if dirty.strip() else "")


def suite_line(log: Path) -> str:
    matches = list(CLOSING.finditer(log.read_text(errors="replace")))
    if not matches:
        raise SystemExit(f"{log}: no pytest closing line ('=== ... in N.NNs ===') found")
    last = matches[-1]
    return f"test suite (`pytest`): {float(last['seconds']):.1f} s in pytest; {last['counts']}"


def verdict_lines(csv: Path, what: str) -> list[str]:
    from harness.claims.verdicts import outcome_counts
    from harness.report.run_verdicts import read_run_verdicts

    table = read_run_verdicts(csv.parent) if csv.name == "verdicts.csv" else None
    if table is None:
        raise SystemExit(f"{csv}: no verdict table")
    header, controls = outcome_counts(table)
    return [f"{what}: {int(table['n_images'].max())} images; {header}", *controls]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite-log", type=Path, help="a pytest run's output")
    parser.add_argument("--claims-verdicts", type=Path, default=ROOT / "reports" / "claims" / "verdicts.csv")
    parser.add_argument("--run-dir", type=Path, help="a `fvit-bench run` folder")
    parser.add_argument("--run-seconds", type=float, help="wall time of that run, seconds")
    parser.add_argument("--note", action="append", default=[], help="a line to add (repeatable)")
    parser.add_argument("--out", type=Path, default=TARGET)
    args = parser.parse_args(argv)
    if not args.suite_log and not args.run_dir:
        parser.error("give --suite-log and/or --run-dir")
    lines = []
    if args.suite_log:
        lines.append(suite_line(args.suite_log))
        if args.claims_verdicts.is_file():
            lines += verdict_lines(args.claims_verdicts, "claims suite verdicts")
    if args.run_dir:
        seconds = "" if args.run_seconds is None else f" in {args.run_seconds:.0f} s"
        lines += verdict_lines(args.run_dir / "verdicts.csv", f"`fvit-bench run` ({args.run_dir}){seconds}")
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    entry = f"## {now}, commit {commit()}\n\nMachine: {machine()}.\n\n" + "".join(
        f"- {line}\n" for line in [*lines, *args.note]
    )
    old = args.out.read_text() if args.out.is_file() else HEADER
    body = old[len(HEADER) :] if old.startswith(HEADER) else old
    rest = body.strip("\n")
    args.out.write_text(HEADER + "\n" + entry + ("\n" + rest + "\n" if rest else ""))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
