"""The codecarbon wrapper: figures checked, forced carbon intensity exact, failures explicit."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from codecarbon import OfflineEmissionsTracker

from harness.cost.emissions import (
    CPU_POWER_MODES,
    Emissions,
    EmissionsMeter,
    EmissionsUnavailableError,
    measure_emissions,
    track_emissions,
)


def work() -> float:
    """About 0.1 s of CPU work."""
    x = torch.randn(256, 256, generator=torch.Generator().manual_seed(0))
    for _ in range(40):
        x = torch.tanh(x @ x / 256)
    return float(x.sum())


def test_forced_intensity_gives_exact_kg():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # deprecated codecarbon kwargs (save_to_*) would warn
        value, em = measure_emissions(work, force_carbon_intensity_g_co2e_kwh=123.0)
    assert value == work()
    assert em.available and em.reason == ""
    assert em.seconds > 0 and em.energy_kwh > 0
    assert em.kg_co2eq == em.energy_kwh * 123.0 / 1000
    assert em.carbon_intensity_g_per_kwh == 123.0 and em.carbon_intensity_source == "forced"
    assert em.energy_kwh == pytest.approx(em.cpu_kwh + em.gpu_kwh + em.ram_kwh, rel=1e-9)
    assert em.cpu_power_mode in CPU_POWER_MODES
    assert em.device.startswith("cpu") and em.gpu_hours == 0.0 and em.gpu_kwh == 0.0


def test_country_intensity_is_reported():
    from codecarbon.input import DataSource

    _, em = measure_emissions(work, country_iso_code="FRA")
    expected = DataSource().get_global_energy_mix_data()["FRA"]["carbon_intensity"]
    assert em.carbon_intensity_g_per_kwh == pytest.approx(expected, rel=1e-6)
    assert "FRA" in em.carbon_intensity_source


def test_blocks_shorter_than_codecarbons_sampling_still_count_energy():
    # codecarbon alone skips the closing sample for blocks under 50 ms and reports ~0 kWh
    _, em = measure_emissions(lambda: None, force_carbon_intensity_g_co2e_kwh=100.0)
    _, longer = measure_emissions(work, force_carbon_intensity_g_co2e_kwh=100.0)
    power_w = em.energy_kwh * 3.6e6 / em.seconds
    assert power_w > 1.0  # at least the RAM estimate's draw: the whole block was counted
    assert longer.energy_kwh > em.energy_kwh


def stop_then_return(value):
    """A tracker.stop that really stops (no leaked scheduler threads) but returns `value`."""
    original = OfflineEmissionsTracker.stop

    def stop(self):
        original(self)
        return value

    return stop


def test_stop_returning_none_raises(monkeypatch):
    monkeypatch.setattr(OfflineEmissionsTracker, "stop", stop_then_return(None))
    with pytest.raises(EmissionsUnavailableError, match="returned None"):
        measure_emissions(work)


def test_stop_returning_none_gives_explicit_unavailable_when_not_strict(monkeypatch):
    monkeypatch.setattr(OfflineEmissionsTracker, "stop", stop_then_return(None))
    meter = EmissionsMeter(strict=False)
    meter.start()
    work()
    em = meter.stop()
    assert not em.available and "returned None" in em.reason
    assert math.isnan(em.energy_kwh) and math.isnan(em.kg_co2eq) and em.seconds > 0


@pytest.mark.parametrize("bad", [float("nan"), -1.0, "n/a"])
def test_invalid_kg_raises(monkeypatch, bad):
    monkeypatch.setattr(OfflineEmissionsTracker, "stop", stop_then_return(bad))
    with pytest.raises(EmissionsUnavailableError, match="kg CO2eq"):
        measure_emissions(work)


def test_kg_inconsistent_with_forced_intensity_raises(monkeypatch):
    original = OfflineEmissionsTracker.stop
    monkeypatch.setattr(OfflineEmissionsTracker, "stop", lambda self: 2 * original(self))
    with pytest.raises(EmissionsUnavailableError, match="disagrees"):
        measure_emissions(work, force_carbon_intensity_g_co2e_kwh=50.0)


def test_output_dir_must_exist_and_receives_the_csv(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        EmissionsMeter(output_dir=tmp_path / "missing")
    _, em = measure_emissions(work, output_dir=tmp_path)
    rows = (tmp_path / "emissions.csv").read_text().strip().splitlines()
    assert len(rows) == 2 and "energy_consumed" in rows[0]
    assert em.available


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(country_iso_code="France"), "3-letter ISO"),
        (dict(country_iso_code="XYZ"), "not in codecarbon"),
        (dict(force_carbon_intensity_g_co2e_kwh=-5.0), "gCO2eq/kWh"),
        (dict(force_carbon_intensity_g_co2e_kwh=float("inf")), "gCO2eq/kWh"),
        (dict(measure_power_secs=0), "measure_power_secs"),
    ],
)
def test_bad_options_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EmissionsMeter(**kwargs)


def test_stop_before_start_and_double_start_raise():
    meter = EmissionsMeter()
    with pytest.raises(RuntimeError, match="before start"):
        meter.stop()
    meter.start()
    with pytest.raises(RuntimeError, match="already started"):
        meter.start()
    assert meter.stop().available


def test_track_emissions_propagates_errors_and_leaves_no_result():
    with pytest.raises(KeyError), track_emissions() as record:
        raise KeyError("boom")
    assert record.result is None


def test_cpu_power_measured_flag():
    em = Emissions(1.0, 1e-6, 1e-7, "intel_rapl", "cpu", 100.0, "forced")
    assert em.cpu_power_measured
    assert not Emissions(1.0, 1e-6, 1e-7, "cpu_load", "cpu", 100.0, "forced").cpu_power_measured
    assert not Emissions.unavailable(1.0, "cpu", "why").cpu_power_measured
