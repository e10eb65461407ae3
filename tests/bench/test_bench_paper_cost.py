"""Paper-architecture cost without the weights: ViT-B/16 + ADM-256, random weights, on a CUDA device.

Seconds per image, peak GPU memory and energy of Transformer Attribution (rollout if that method is
not registered) plain and under every DDS variant at its default settings (sigma, samples). Random weights
cost the same time and memory as the published ones. Rows also go to reports/cost/paper_cost.{md,csv}.
Skipped without a CUDA device (a CPU run of ADM-256 would take hours).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.cost.bench import benchmark_with_energy
from harness.cost.timing import PLAIN, paper_architecture_models
from harness.explainers.registry import get_explainer, names
from harness.smoothing.dds import purifier_names, smooth

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: paper-architecture cost needs a GPU"),
]

METHOD = "transformer_attribution" if "transformer_attribution" in names() else "rollout"
REPORT_DIR = Path(__file__).resolve().parents[2] / "reports" / "cost"


@pytest.fixture(scope="module")
def paper_world():
    model, denoiser = paper_architecture_models("cuda")
    images = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0)).cuda()
    return model, denoiser, images


@pytest.fixture(scope="module")
def paper_rows():
    rows: list[dict] = []
    yield rows
    if rows:
        import pandas as pd

        from harness.report.tables import write_table

        write_table(
            pd.DataFrame(rows),
            REPORT_DIR,
            "paper_cost",
            f"Paper-architecture cost: {METHOD} on ViT-B/16 (random weights) with ADM-256 DDS",
            (
                "seconds_per_image: codecarbon's duration of the timed calls / calls (CUDA synchronised).",
                "peak_gpu_memory_gib: torch.cuda.max_memory_allocated over the timed calls, GiB.",
                "energy_kwh_per_image (CPU + GPU + RAM) and kg_co2eq_per_image: codecarbon, offline.",
                "sigma_255: DDS noise std in [0,1] pixel units x 255 (each variant's default).",
                "unet_dtype: the dtype ADM-256 computes in (float16 as FViT's and Re's code); ViT-B/16 in float32.",
            ),
            (f"Device: {rows[0]['device']}; CPU power mode: {rows[0]['cpu_power_mode']}.",),
        )


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("dds", [PLAIN, *purifier_names()])
def test_paper_cost(benchmark, paper_world, paper_rows, dds, dtype):
    model, denoiser, images = paper_world
    if dds == PLAIN and dtype != "float32":
        pytest.skip("the plain explanation has no UNet: one dtype row is enough")
    denoiser.set_dtype(dtype)  # the UNet's dtype (FViT and Re run ADM in fp16); the ViT stays float32
    explainer = get_explainer(METHOD)
    if dds != PLAIN:
        explainer = smooth(explainer, denoiser, dds)
    benchmark.group = f"paper cost: {METHOD} on vit_base_patch16_224 + adm-256 ({dtype} UNet)"
    explainer(model, images)  # warm-up (cuDNN autotuning, lazy init)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    maps = benchmark_with_energy(
        benchmark, lambda: explainer(model, images), rounds=2, warmup_rounds=0, device="cuda", images=1
    )
    peak = torch.cuda.max_memory_allocated() / 2**30
    info = benchmark.extra_info
    info.update(method=METHOD, dds=dds, peak_gpu_memory_gib=peak)
    paper_rows.append(
        {
            "method": METHOD,
            "dds": dds,
            "unet_dtype": dtype if dds != PLAIN else "-",
            "sigma_255": getattr(explainer, "sigma", float("nan")) * 255,
            "samples_per_image": getattr(explainer, "n_samples", 1),
            "seconds_per_image": info["seconds_per_call"],
            "peak_gpu_memory_gib": peak,
            "energy_kwh_per_image": info["energy_kwh_per_image"],
            "kg_co2eq_per_image": info["kg_co2eq_per_image"],
            "gpu_hours_per_image": info["gpu_hours_per_call"],
            "device": info["device"],
            "cpu_power_mode": info["cpu_power_mode"],
        }
    )
    assert maps.shape == (1, 224, 224)
    assert torch.isfinite(maps).all()
    assert peak > 0
