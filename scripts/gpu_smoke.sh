#!/usr/bin/env bash
# GPU smoke run (harness/cost/gpu_smoke.py, docs/gpu.md): ViT-B/16 + full-width ADM-256 with random weights, every
# DDS variant, PGD 8/255, every explainer and the segmentation / perturbation metrics, UNet in fp32, fp16 and bf16;
# writes reports/bench/gpu.md with the seconds per call, the peak memory and the cost plan recomputed from them.
# Usage: scripts/gpu_smoke.sh [--device cpu --tiny] [--dtypes float32,float16,bfloat16] [--out DIR] [--help]
# Python: $FVIT_PYTHON, else .venv/bin/python, else python3. Offline wheels (a machine without the package
# registry): FVIT_WHEELS=DIR installs DIR/*.whl (no index, no dependencies) into a temporary folder first.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${FVIT_PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
if [ -n "${FVIT_WHEELS:-}" ]; then
  site="${TMPDIR:-/tmp}/fvit-smoke-site"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$FVIT_WHEELS"/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$PY" -m harness.cost.gpu_smoke "$@"
