"""Benchmarks of hot paths with their energy: one PGD step, and rollout plain vs carlini-smoothed.

Timings are saved only with --benchmark-enable (the repo's addopts disable benchmarks, so a plain
`pytest` run executes each once as a smoke test). extra_info carries the device, codecarbon's CPU
power mode and the energy / kg CO2eq per call and per image.
"""

from __future__ import annotations

import pytest
import torch

from harness.attacks.pgd import pgd_linf
from harness.cost.bench import benchmark_with_energy
from harness.explainers.registry import get_explainer
from harness.smoothing.dds import smooth

IMAGES = 2
RADIUS = 8 / 255  # L-inf, [0,1] pixel units
CARLINI_SIGMA = 32 / 255  # pixel units, as the embedded claims
CARLINI_SAMPLES = 4


@pytest.fixture(scope="module")
def world():
    """Random-weight mini ViT and mini denoiser (timing does not depend on weights) and 2 test images."""
    from harness.cost.timing import embedded_models
    from harness.data.embedded import EmbeddedShapes, stack

    model, denoiser, _ = embedded_models(random_weights=True)
    return model, denoiser, stack(EmbeddedShapes("test"), range(IMAGES))[0]


@pytest.mark.benchmark(group="cost: pgd one step")
def test_bench_pgd_one_step(benchmark, world):
    model, _, images = world
    adv = benchmark_with_energy(
        benchmark,
        lambda: pgd_linf(model, images, RADIUS, steps=1, seed=0),
        rounds=20,
        images=IMAGES,
        force_carbon_intensity_g_co2e_kwh=56.0,
    )
    assert (adv - images).abs().max() <= RADIUS + 1e-6
    assert benchmark.extra_info["energy_kwh_per_call"] > 0
    assert benchmark.extra_info["gpu_hours_per_call"] == 0.0


@pytest.mark.benchmark(group="cost: rollout plain vs carlini")
@pytest.mark.parametrize("dds", ["none", "carlini"])
def test_bench_rollout_plain_vs_carlini(benchmark, world, dds):
    model, denoiser, images = world
    explainer = get_explainer("rollout")
    if dds != "none":
        explainer = smooth(explainer, denoiser, dds, sigma=CARLINI_SIGMA, samples=CARLINI_SAMPLES)
    rounds = 20 if dds == "none" else 5  # ~30 ms vs ~1 s per call on 2 CPU cores
    maps = benchmark_with_energy(benchmark, lambda: explainer(model, images), rounds=rounds, images=IMAGES)
    assert maps.shape == (IMAGES, model.image_size, model.image_size)
    assert torch.isfinite(maps).all()
    info = benchmark.extra_info
    assert info["energy_kwh_per_image"] == pytest.approx(info["energy_kwh_per_call"] / IMAGES)
    assert info["device"].startswith("cpu")
