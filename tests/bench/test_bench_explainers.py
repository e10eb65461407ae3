"""Maps per second of each built-in method on the tiny ViT (random weights), at batch 1 and batch 8.

Under the default `--benchmark-disable` each body runs once as a plain test; measure with
`OMP_NUM_THREADS=1 pytest tests/bench/test_bench_explainers.py --benchmark-enable --benchmark-json=OUT`.
Per-image cost = mean / maps_per_call (see extra_info).
"""

from __future__ import annotations

import os

import pytest
import torch

from harness.cost.bench import mean_seconds, write_ratio_table
from harness.explainers import get_explainer
from harness.explainers.builtin import BUILTIN_METHODS
from harness.models.classifier import ViTClassifier
from harness.models.mini import MINI_VIT_NORM, build_mini_vit

METHODS = sorted(BUILTIN_METHODS)


@pytest.fixture(scope="module", autouse=True)
def honour_omp_num_threads():
    """tests/conftest.py pins torch to 2 threads; a benchmark run follows OMP_NUM_THREADS when set."""
    before = torch.get_num_threads()
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def timings():
    """Seconds per map by (method, batch); written at the end with batch 8's per-map cost over batch 1's."""
    rows: list[dict] = []
    yield rows
    by_key = {(r["method"], r["batch"]): r for r in rows}
    write_ratio_table(
        rows,
        lambda row: by_key.get((row["method"], 1)),
        "explainers",
        "Seconds per map by method and batch size (tiny ViT, random weights)",
        (
            "seconds: pytest-benchmark mean wall-clock seconds of one call / maps per call (CPU, 64x64 images).",
            "ratio_vs_baseline: seconds per map at this batch / at batch 1, same method, same process "
            "(below 1 = batching pays).",
            "maps_per_second: 1 / seconds.",
        ),
    )


@pytest.fixture(scope="module")
def tiny_vit():
    torch.manual_seed(0)
    return ViTClassifier(build_mini_vit(), **MINI_VIT_NORM, name="random-mini-vit")


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("method", METHODS)
def test_bench_explainer(benchmark, tiny_vit, timings, method, batch):
    images = torch.rand(batch, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    target = torch.arange(batch) % tiny_vit.num_classes
    explainer = get_explainer(method)
    benchmark.group = method
    benchmark.extra_info["maps_per_call"] = batch
    benchmark.extra_info["model"] = tiny_vit.name
    maps = benchmark(explainer, tiny_vit, images, target)
    assert maps.shape == (batch, 64, 64) and torch.isfinite(maps).all()
    seconds = mean_seconds(benchmark)
    if seconds is not None:
        timings.append(
            {"method": method, "batch": batch, "seconds": seconds / batch, "maps_per_second": batch / seconds}
        )
