"""The asv suite imports, covers every registered method and variant, and its benchmarks run."""

from __future__ import annotations

import importlib
import inspect
import math
from pathlib import Path

import pytest

from harness.explainers.registry import names
from harness.smoothing.dds import VARIANTS, purifier_names

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def suite(monkeypatch):
    import torch

    threads = torch.get_num_threads()  # the suite's setup pins torch threads: restore them afterwards
    monkeypatch.syspath_prepend(str(ROOT))
    yield importlib.import_module("benchmarks.bench_cost")
    torch.set_num_threads(threads)


def benchmark_methods(cls) -> dict[str, object]:
    prefixes = ("time_", "peakmem_", "track_", "mem_", "timeraw_")
    return {n: f for n, f in inspect.getmembers(cls, inspect.isfunction) if n.startswith(prefixes)}


def test_grids_follow_the_registries(suite):
    assert names() == suite.METHODS
    assert [suite.PLAIN, *purifier_names()] == suite.DDS
    for cls in (suite.ExplainerTime, suite.ExplainerEnergy):
        assert cls.params == (suite.METHODS, suite.DDS) and cls.param_names == ["method", "dds"]


def test_every_kind_of_benchmark_is_there_with_units(suite):
    found = {}
    for cls in (suite.ExplainerTime, suite.ExplainerEnergy, suite.AttackTime):
        found.update(benchmark_methods(cls))
    assert {"time_explain", "peakmem_explain", "time_pgd_one_step", "peakmem_pgd_one_step"} <= set(found)
    units = {n: getattr(f, "unit", None) for n, f in found.items() if n.startswith("track_")}
    assert units == {"track_energy_kwh": "kWh", "track_kg_co2eq": "kg CO2eq", "track_gpu_hours": "GPU-h"}
    assert suite.ExplainerEnergy.setup_cache.timeout > suite.ExplainerEnergy.timeout


@pytest.mark.parametrize("dds", ["none", "carlini"])
def test_time_and_peakmem_benchmarks_run(suite, dds):
    bench = suite.ExplainerTime()
    bench.setup("rollout", dds)
    assert bench.time_explain("rollout", dds) is None
    assert bench.peakmem_explain("rollout", dds) is None
    attack = suite.AttackTime()
    attack.setup()
    attack.time_pgd_one_step()


def test_track_benchmarks_read_the_cached_cost_table(suite, monkeypatch):
    monkeypatch.setattr(suite, "METHODS", ["rollout"])
    monkeypatch.setattr(suite, "VARIANTS", {"carlini": VARIANTS["carlini"]})
    bench = suite.ExplainerEnergy()
    cache = bench.setup_cache()
    assert set(cache) == {"rollout|none", "rollout|carlini"}
    for dds in ("none", "carlini"):
        kwh = bench.track_energy_kwh(cache, "rollout", dds)
        kg = bench.track_kg_co2eq(cache, "rollout", dds)
        assert kwh > 0 and math.isclose(kg, kwh * suite.WORLD_AVERAGE_G_PER_KWH / 1000, rel_tol=1e-12)
        assert bench.track_gpu_hours(cache, "rollout", dds) == 0.0  # CPU: no GPU used


def test_asv_config_works_offline_on_the_existing_environment():
    from asv.util import load_json

    conf = load_json(str(ROOT / "asv.conf.json"), js_comments=True)
    assert conf["environment_type"] == "existing"
    assert all("/" in p for p in conf["pythons"])  # interpreter paths, not versions
    assert "main" in conf["branches"] and conf["repo"] == "."
    assert (ROOT / conf["benchmark_dir"] / "__init__.py").is_file()
    assert conf["results_dir"].startswith(".asv") and conf["html_dir"].startswith(".asv")
