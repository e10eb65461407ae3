#!/usr/bin/env bash
# Nightly regression run (see harness/cost/nightly.py): CPU claims, benchmarks compared with the last
# saved run (fails on a mean slowdown beyond --threshold, default 25%), the GPU smoke run with CUDA, asv run + publish.
# Usage: scripts/nightly.sh [--threshold 25%] [--skip-claims] [--skip-bench] [--skip-asv] [--skip-gpu-smoke] [--dry-run]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${FVIT_PYTHON:-.venv/bin/python}"
exec "$PY" -m harness.cost.nightly "$@"
