"""Energy and CO2 of a block of work, measured offline by codecarbon, with its figures checked.

codecarbon swallows its own exceptions (its `start` and `stop` are wrapped in a `suppress`) and
`stop()` returns None when anything went wrong, so every figure it returns is checked here: a missing
or non-finite value raises `EmissionsUnavailableError` (or, with ``strict=False``, gives an
`Emissions` whose ``available`` is False and whose figures are NaN).

How codecarbon got the CPU power is recorded (`cpu_power_mode`): ``intel_rapl`` reads the RAPL
energy counters (a measurement); ``cpu_load`` is the CPU's TDP times the measured load (an estimate,
what a container without RAPL access gets); ``constant`` is a fixed TDP (an estimate). Figures are
only comparable between runs with the same mode. RAM power is codecarbon's estimate from the memory size.

Pass ``force_carbon_intensity_g_co2e_kwh`` to fix the grid intensity (gCO2eq per kWh): kg CO2eq is then
exactly ``energy_kwh * intensity / 1000`` and reproducible given the energy. Without it the intensity
is codecarbon's figure for `country_iso_code`, and the one used is reported back.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import torch

T = TypeVar("T")

DEFAULT_COUNTRY = "FRA"
# IEA's 2019 world-average grid intensity, shipped by codecarbon as `world_average` (gCO2eq/kWh):
# the forced intensity of tracked benchmarks, so their kg follow energy alone.
WORLD_AVERAGE_G_PER_KWH = 475.0
# How each codecarbon CPU mode obtains power, for reports.
CPU_POWER_MODES = {
    "intel_rapl": "RAPL energy counters (measured)",
    "windows_emi": "Windows energy meter, RAPL (measured)",
    "intel_power_gadget": "Intel Power Gadget (measured)",
    "cpu_load": "TDP x measured CPU load (estimate)",
    "constant": "constant TDP (estimate)",
    "powermetrics": "Apple powermetrics (measured)",
    "raspberry": "Raspberry Pi PMIC (measured)",
}
# Relative tolerance between our kWh x intensity and codecarbon's own kg, which it sums per interval.
_KG_CONSISTENCY_RTOL = 1e-9


class EmissionsUnavailableError(RuntimeError):
    """codecarbon returned no usable figure (it hides its own errors: see the module docstring)."""


@dataclass(frozen=True)
class Emissions:
    """What one tracked block of work cost. Units are in the field names.

    seconds: codecarbon's duration of the block (the time base of the energy figure);
    energy_kwh = cpu_kwh + gpu_kwh + ram_kwh; kg_co2eq at carbon_intensity_g_per_kwh;
    gpu_hours: seconds / 3600 when the work ran on a CUDA device, else 0 (CPU work uses no GPU).
    """

    seconds: float
    energy_kwh: float
    kg_co2eq: float
    cpu_power_mode: str
    device: str
    carbon_intensity_g_per_kwh: float
    carbon_intensity_source: str
    cpu_kwh: float = math.nan
    gpu_kwh: float = math.nan
    ram_kwh: float = math.nan
    gpu_hours: float = 0.0
    hardware: tuple[str, ...] = ()
    available: bool = True
    reason: str = ""

    @property
    def cpu_power_measured(self) -> bool:
        """True when the CPU power came from an energy counter, not a TDP-based estimate."""
        return "(measured)" in CPU_POWER_MODES.get(self.cpu_power_mode, "")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def unavailable(cls, seconds: float, device: str, reason: str) -> Emissions:
        """An explicit 'no figure' result: every energy and CO2 field is NaN."""
        nan = math.nan
        return cls(seconds, nan, nan, "unavailable", device, nan, "unavailable", available=False, reason=reason)


def describe_device(device: str | torch.device = "cpu") -> str:
    """'cpu (2 logical cores)' or 'cuda:0 (NVIDIA H100 80GB HBM3)': where the measured work ran."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"{device.type} ({os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads)"


@cache
def known_countries() -> frozenset[str]:
    """ISO codes with a carbon intensity in codecarbon's offline data."""
    from codecarbon.input import DataSource

    return frozenset(DataSource().get_global_energy_mix_data())


def _check_output_dir(output_dir: str | Path | None) -> Path:
    if output_dir is None:
        import tempfile

        return Path(tempfile.gettempdir()).resolve()
    path = Path(output_dir).expanduser().resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"emissions output directory {path} does not exist: create it first")
    return path


def _quiet_codecarbon() -> None:
    # codecarbon logs at INFO/WARNING during __init__, before it applies its own log_level.
    logging.getLogger("codecarbon").setLevel(logging.ERROR)


def _finite(name: str, value: Any) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise EmissionsUnavailableError(f"codecarbon returned a non-numeric {name}: {value!r}") from None
    if not math.isfinite(value) or value < 0:
        raise EmissionsUnavailableError(f"codecarbon returned an invalid {name}: {value!r}")
    return value


def _cpu_power_mode(tracker: Any) -> str:
    """The codecarbon mode of the tracker's CPU hardware (its private `_hardware` list)."""
    modes = [getattr(h, "_mode", None) for h in getattr(tracker, "_hardware", [])]
    modes = [m for m in modes if m]
    if modes:
        return str(modes[0])
    parts = [getattr(h, "chip_part", None) for h in getattr(tracker, "_hardware", [])]
    if "CPU" in parts:
        kinds = {type(h).__name__ for h in tracker._hardware}
        return "raspberry" if "Raspberry" in kinds else "powermetrics"
    return "unknown"


def _close_block(tracker: Any) -> None:
    """Take the closing power sample now.

    codecarbon's stop() skips its final sample when the last one is under 50 ms old, so a block
    shorter than that would count no energy at all; this private call closes every block exactly.
    """
    measure = getattr(tracker, "_measure_power_and_energy", None)
    if callable(measure):
        with suppress(Exception):  # a tracker whose start failed: stop() then returns None, checked below
            measure()


class EmissionsMeter:
    """Track one block of work: ``meter.start()``, the work, ``meter.stop() -> Emissions``.

    country_iso_code: 3-letter ISO code of the grid (codecarbon's offline data);
    force_carbon_intensity_g_co2e_kwh: fix the intensity (gCO2eq/kWh) for reproducible kg;
    output_dir: an existing directory; when given, codecarbon appends a row to its emissions.csv
    there, otherwise nothing is written; device: where the work runs (CUDA work is synchronised
    before the tracker stops); strict: raise `EmissionsUnavailableError` on a missing figure
    (default) or return `Emissions.unavailable(...)`.
    The tracker runs with allow_multiple_runs=True (no global lock file, so independent meters in
    parallel processes do not silence each other); it tracks the whole machine, so concurrent
    work on the same machine is counted too.
    """

    def __init__(
        self,
        country_iso_code: str = DEFAULT_COUNTRY,
        force_carbon_intensity_g_co2e_kwh: float | None = None,
        output_dir: str | Path | None = None,
        device: str | torch.device = "cpu",
        measure_power_secs: float = 1.0,
        project_name: str = "fvit-bench",
        strict: bool = True,
    ):
        code = country_iso_code
        if not (isinstance(code, str) and len(code) == 3 and code.isalpha()):
            raise ValueError(f"country_iso_code must be a 3-letter ISO code such as 'FRA', got {code!r}")
        if code.upper() not in known_countries():
            # codecarbon would log an error and silently use the world average instead
            raise ValueError(f"country_iso_code {code!r} is not in codecarbon's offline energy-mix data")
        intensity = force_carbon_intensity_g_co2e_kwh
        if intensity is not None and not (math.isfinite(float(intensity)) and float(intensity) >= 0):
            raise ValueError(f"force_carbon_intensity_g_co2e_kwh must be a finite gCO2eq/kWh >= 0, got {intensity!r}")
        if measure_power_secs <= 0:
            raise ValueError(f"measure_power_secs must be > 0, got {measure_power_secs}")
        self.country_iso_code = country_iso_code.upper()
        self.forced_intensity = None if intensity is None else float(intensity)
        self.output_dir = None if output_dir is None else _check_output_dir(output_dir)
        self.device = torch.device(device)
        self.measure_power_secs = float(measure_power_secs)
        self.project_name = project_name
        self.strict = strict
        self._tracker: Any = None
        self._t0: float | None = None

    def _make_tracker(self) -> Any:
        from codecarbon import OfflineEmissionsTracker, OutputMethod

        _quiet_codecarbon()
        kwargs: dict[str, Any] = dict(
            project_name=self.project_name,
            country_iso_code=self.country_iso_code,
            output_dir=str(_check_output_dir(self.output_dir)),
            output_methods=[OutputMethod.CSV] if self.output_dir is not None else [],
            log_level="error",
            measure_power_secs=self.measure_power_secs,
            allow_multiple_runs=True,
        )
        if self.forced_intensity is not None:
            kwargs["force_carbon_intensity_g_co2e_kwh"] = self.forced_intensity
        return OfflineEmissionsTracker(**kwargs)

    def start(self) -> None:
        if self._tracker is not None:
            raise RuntimeError("EmissionsMeter already started: call stop() first")
        self._tracker = self._make_tracker()
        self._tracker.start()
        self._t0 = time.perf_counter()

    def stop(self) -> Emissions:
        if self._tracker is None or self._t0 is None:
            raise RuntimeError("EmissionsMeter.stop() called before start()")
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        tracker, self._tracker = self._tracker, None
        _close_block(tracker)
        kg = tracker.stop()
        seconds = time.perf_counter() - self._t0
        try:
            return self._result(tracker, kg)
        except EmissionsUnavailableError as err:
            if self.strict:
                raise
            return Emissions.unavailable(seconds, describe_device(self.device), str(err))

    def _result(self, tracker: Any, kg: Any) -> Emissions:
        if kg is None:
            raise EmissionsUnavailableError(
                "codecarbon's tracker.stop() returned None: it failed internally (its errors are swallowed; "
                "rerun with log_level='debug' on OfflineEmissionsTracker to see why)"
            )
        data = getattr(tracker, "final_emissions_data", None)
        if data is None:
            raise EmissionsUnavailableError("codecarbon's tracker kept no final emissions data after stop()")
        kg = _finite("kg CO2eq", kg)
        seconds = _finite("duration (s)", data.duration)
        energy = _finite("energy (kWh)", data.energy_consumed)
        cpu, gpu, ram = (_finite(n, getattr(data, n)) for n in ("cpu_energy", "gpu_energy", "ram_energy"))
        if self.forced_intensity is not None:
            intensity, source = self.forced_intensity, "forced"
            exact = energy * intensity / 1000.0
            if not math.isclose(kg, exact, rel_tol=_KG_CONSISTENCY_RTOL, abs_tol=1e-18):
                raise EmissionsUnavailableError(
                    f"codecarbon's kg CO2eq {kg!r} disagrees with energy x forced intensity {exact!r}"
                )
            kg = exact  # the exact product; codecarbon sums it per measurement interval
        else:
            intensity = kg * 1000.0 / energy if energy > 0 else math.nan
            source = f"codecarbon offline data for {data.country_iso_code or self.country_iso_code}"
        device = describe_device(self.device)
        cpu_model = getattr(data, "cpu_model", None)
        if self.device.type == "cpu" and cpu_model:
            device = f"{device}, {cpu_model}"
        return Emissions(
            seconds=seconds,
            energy_kwh=energy,
            kg_co2eq=kg,
            cpu_power_mode=_cpu_power_mode(tracker),
            device=device,
            carbon_intensity_g_per_kwh=intensity,
            carbon_intensity_source=source,
            cpu_kwh=cpu,
            gpu_kwh=gpu,
            ram_kwh=ram,
            gpu_hours=seconds / 3600.0 if self.device.type == "cuda" else 0.0,
            hardware=tuple(str(h) for h in tracker._conf.get("hardware", ())),
        )


@dataclass
class EmissionsRecord:
    """Filled in when a `track_emissions` block ends: `.result` is the block's `Emissions`."""

    result: Emissions | None = field(default=None)


@contextmanager
def track_emissions(**meter_options: Any) -> Iterator[EmissionsRecord]:
    """``with track_emissions(country_iso_code="FRA") as rec: work()`` then ``rec.result``.

    Options are those of `EmissionsMeter`. If the block raises, the tracker is stopped and the
    error propagates (no result).
    """
    meter = EmissionsMeter(**meter_options)
    record = EmissionsRecord()
    meter.start()
    try:
        yield record
    except BaseException:
        meter.strict = False
        meter.stop()
        raise
    record.result = meter.stop()


def measure_emissions(fn: Callable[[], T], **meter_options: Any) -> tuple[T, Emissions]:
    """Run ``fn()`` under an `EmissionsMeter`; return its result and the `Emissions`."""
    with track_emissions(**meter_options) as record:
        value = fn()
    assert record.result is not None
    return value, record.result
