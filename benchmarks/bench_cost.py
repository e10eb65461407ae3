"""Cost of every registered explainer, plain and under every DDS variant, and of one PGD step.

The grids come from `harness.explainers.registry.names()` and `harness.smoothing.dds.purifier_names()` at import,
so methods and variants added later are benchmarked without edits. Settings are tiny so the whole suite
runs in a few minutes on 2 CPU cores: the embedded world's architectures with random weights (cost does
not depend on weight values), 1 image of 64x64, m = 1 DDS sample, sigma = 1.5/255 in pixel units (FViT's
rule gives 3 denoising steps there; its default 4/255 gives 45), 1 torch thread.
GPU-hours are 0 here: the suite runs on the CPU.
"""

from __future__ import annotations

import os

import torch

from harness.attacks.pgd import pgd_linf
from harness.cost.emissions import WORLD_AVERAGE_G_PER_KWH
from harness.cost.timing import PLAIN, CostSettings, cost_table, embedded_images, embedded_models
from harness.explainers.registry import get_explainer, names
from harness.smoothing.dds import purifier_names, smooth

METHODS = names()
VARIANTS = purifier_names()  # the oracle (a claims control handed the clean image) has no cost
DDS = [PLAIN, *VARIANTS]
SIGMA = 1.5 / 255  # pixel units
SAMPLES = 1
THREADS = int(os.environ.get("FVIT_BENCH_THREADS", "1"))
ATTACK_RADIUS = 8 / 255  # L-inf, pixel units
SETTINGS = CostSettings(
    images=1,
    batch_size=1,
    repeats=1,
    warmup=True,
    sigma=SIGMA,
    samples=SAMPLES,
    carbon_intensity_g_per_kwh=WORLD_AVERAGE_G_PER_KWH,
)


def _world():
    torch.set_num_threads(THREADS)
    model, denoiser, _ = embedded_models(random_weights=True)
    return model, denoiser, embedded_images(SETTINGS.images)


def _explainer(method: str, dds: str, denoiser):
    plain = get_explainer(method)
    return plain if dds == PLAIN else smooth(plain, denoiser, dds, sigma=SIGMA, samples=SAMPLES)


class _Short:
    """Each benchmark: one call per sample, up to 3 samples, one round, no warm-up beyond setup's call."""

    number = 1
    repeat = (1, 3, 2.0)
    rounds = 1
    warmup_time = 0.0
    timeout = 60.0


class ExplainerTime(_Short):
    params = (METHODS, DDS)
    param_names = ["method", "dds"]

    def setup(self, method: str, dds: str) -> None:
        self.model, denoiser, self.images = _world()
        self.explainer = _explainer(method, dds, denoiser)
        self.explainer(self.model, self.images)  # lazy initialisation out of the timing

    def time_explain(self, method: str, dds: str) -> None:
        self.explainer(self.model, self.images)

    def peakmem_explain(self, method: str, dds: str) -> None:
        self.explainer(self.model, self.images)


class ExplainerEnergy:
    """Energy, CO2 and GPU-hours per image from one cost table computed once (setup_cache)."""

    params = (METHODS, DDS)
    param_names = ["method", "dds"]
    timeout = 60.0

    def setup_cache(self) -> dict[str, dict[str, float]]:
        model, denoiser, images = _world()
        table = cost_table(model, denoiser, images, METHODS, list(VARIANTS), SETTINGS)
        return {f"{r['method']}|{r['dds']}": r for r in table.to_dict("records")}

    setup_cache.timeout = 600.0

    def track_energy_kwh(self, cache: dict, method: str, dds: str) -> float:
        return float(cache[f"{method}|{dds}"]["energy_kwh_per_image"])

    track_energy_kwh.unit = "kWh"

    def track_kg_co2eq(self, cache: dict, method: str, dds: str) -> float:
        return float(cache[f"{method}|{dds}"]["kg_co2eq_per_image"])

    track_kg_co2eq.unit = "kg CO2eq"

    def track_gpu_hours(self, cache: dict, method: str, dds: str) -> float:
        """0 on the CPU (no GPU used)."""
        return float(cache[f"{method}|{dds}"]["gpu_hours_per_image"])

    track_gpu_hours.unit = "GPU-h"


class AttackTime(_Short):
    """One PGD L-inf step (radius 8/255 pixel units) on the embedded ViT, one image."""

    def setup(self) -> None:
        self.model, _, self.images = _world()

    def time_pgd_one_step(self) -> None:
        pgd_linf(self.model, self.images, ATTACK_RADIUS, steps=1, seed=0)

    def peakmem_pgd_one_step(self) -> None:
        pgd_linf(self.model, self.images, ATTACK_RADIUS, steps=1, seed=0)
