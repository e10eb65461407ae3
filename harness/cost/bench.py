"""pytest-benchmark glue: run a benchmark under an `EmissionsMeter` and attach energy to its extra_info."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from harness.cost.emissions import EmissionsMeter


def benchmark_with_energy(
    benchmark: Any,
    fn: Callable[[], Any],
    rounds: int = 5,
    warmup_rounds: int = 1,
    device: str | torch.device = "cpu",
    images: int | None = None,
    **meter_options: Any,
) -> Any:
    """`benchmark.pedantic(fn, rounds, warmup_rounds)` with energy per call in `benchmark.extra_info`.

    Calls are counted (pytest-benchmark runs `fn` once when benchmarks are disabled), and the
    energy and CO2 of the timed block are divided by that count: energy_kwh_per_call,
    kg_co2eq_per_call (and *_per_image when `images` is given). CUDA work is synchronised inside
    each call, so pytest-benchmark's timings cover the GPU work.
    """
    device = torch.device(device)
    calls = 0

    def call() -> Any:
        nonlocal calls
        calls += 1
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return out

    if not getattr(benchmark, "disabled", False):
        for _ in range(warmup_rounds):
            call()
        calls = 0
    meter = EmissionsMeter(device=device, **meter_options)
    meter.start()
    result = benchmark.pedantic(call, rounds=rounds, warmup_rounds=0, iterations=1)
    em = meter.stop()
    info = {
        "device": em.device,
        "cpu_power_mode": em.cpu_power_mode,
        "carbon_intensity_g_per_kwh": em.carbon_intensity_g_per_kwh,
        "calls": calls,
        "seconds_per_call": em.seconds / calls,
        "energy_kwh_per_call": em.energy_kwh / calls,
        "kg_co2eq_per_call": em.kg_co2eq / calls,
        "gpu_hours_per_call": em.gpu_hours / calls,
    }
    if images:
        info.update(
            images=images,
            energy_kwh_per_image=info["energy_kwh_per_call"] / images,
            kg_co2eq_per_image=info["kg_co2eq_per_call"] / images,
        )
    benchmark.extra_info.update(info)
    return result


def mean_seconds(benchmark: Any) -> float | None:
    """Mean seconds per round of a finished pytest-benchmark run; None when benchmarks are disabled."""
    stats = getattr(benchmark, "stats", None)
    return None if stats is None else float(stats.stats.mean)


def write_ratio_table(
    rows: list[dict], baseline: Callable[[dict], dict | None], stem: str, title: str, conventions: tuple[str, ...]
) -> None:
    """Write reports/bench/`stem`.{md,csv}: each row's `seconds` and its ratio to `baseline(row)`'s,
    both measured in the same process (nothing is written when benchmarks were disabled)."""
    import pandas as pd

    from harness.report.tables import write_table

    if not rows:
        return
    for row in rows:
        base = baseline(row)
        row["ratio_vs_baseline"] = row["seconds"] / base["seconds"] if base else float("nan")
    out = Path(__file__).resolve().parents[2] / "reports" / "bench"
    write_table(pd.DataFrame(rows), out, stem, title, conventions, floatfmt=".4g")
