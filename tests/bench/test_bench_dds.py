"""Seconds per smoothed explanation of each DDS variant on the tiny models (rollout, one image).

Under the repo's default `--benchmark-disable` each body runs once as a smoke test; measure with
`OMP_NUM_THREADS=1 .venv/bin/pytest tests/bench/test_bench_dds.py --benchmark-enable
--benchmark-json=/tmp/bench_dds.json`. Each variant runs at its defaults (carlini: sigma 0.12, 8
samples; fvit: 4/255 pixel = delta 8/255 normalised, 2 samples, 45 steps; re: same sigma, 10 samples;
the ablations: 2 samples). extra_info: variant, samples, sigma, unet_calls (per smoothed map).
"""

from __future__ import annotations

import pytest
import torch

from harness.cost.bench import mean_seconds, write_ratio_table
from harness.explainers.registry import get_explainer
from harness.smoothing.dds import smooth

# The multi-step variants (45 UNet calls per sample) are `slow` as plain smoke tests.
VARIANTS = ["none", "carlini", "noise_only"] + [
    pytest.param(v, marks=pytest.mark.slow) for v in ("fvit", "re", "denoise_only")
]


@pytest.fixture(scope="module")
def timings():
    """Seconds per smoothed explanation by variant; written with ratios to the plain one at the end."""
    rows: list[dict] = []
    yield rows
    plain = {r["variant"]: r for r in rows}.get("none")
    write_ratio_table(
        rows,
        lambda row: plain,
        "dds_variants",
        "Seconds per smoothed explanation by DDS variant (rollout, tiny models)",
        (
            "seconds: pytest-benchmark mean wall-clock seconds per smoothed map of one 64x64 image (CPU).",
            "ratio_vs_baseline: seconds / the plain rollout map's seconds, measured in the same process.",
            "sigma_pixel: DDS noise std in [0,1] pixel units; unet_calls: UNet forward calls per smoothed map.",
        ),
    )


@pytest.fixture(scope="module")
def world():
    """Random-weight mini ViT and mini UNet (time does not depend on weights) and one test image."""
    from harness.cost.timing import embedded_models
    from harness.data.embedded import EmbeddedShapes, stack

    model, denoiser, _ = embedded_models(random_weights=True)
    return model, denoiser, stack(EmbeddedShapes("test"), range(1))[0]


@pytest.mark.benchmark(group="dds: seconds per smoothed explanation")
@pytest.mark.parametrize("variant", VARIANTS)
def test_bench_dds_variant(benchmark, world, timings, variant):
    model, denoiser, image = world
    explainer = get_explainer("rollout")
    if variant == "none":
        fn, samples, calls, sigma = (lambda: explainer(model, image)), 1, 0, 0.0
    else:
        smoothed = smooth(explainer, denoiser, variant, seed=0)
        fn, samples, sigma = (lambda: smoothed(model, image)), smoothed.n_samples, smoothed.sigma
        calls = smoothed.n_samples * smoothed.unet_calls_per_sample
    benchmark.extra_info.update(
        variant=variant, samples=samples, sigma_pixel=sigma, unet_calls=calls, threads=torch.get_num_threads()
    )
    maps = benchmark.pedantic(
        fn, rounds=3 if variant in ("none", "carlini", "noise_only") else 1, iterations=1, warmup_rounds=1
    )
    assert maps.shape == (1, 64, 64) and torch.isfinite(maps).all()
    seconds = mean_seconds(benchmark)
    if seconds is not None:
        timings.append(
            {"variant": variant, "samples": samples, "sigma_pixel": sigma, "unet_calls": calls, "seconds": seconds}
        )
