"""Transformer Attribution on ViT-B/16 (random weights, CPU): batch 8 against a batch-1 loop of the same code.

Maps per second of both, measured in the same process; writes reports/bench/ta_batching.{md,csv}.
Slow (ViT-B/16 at 224 on a CPU: seconds per map), so it runs with `pytest -m slow tests/bench`.
"""

from __future__ import annotations

import time

import pytest
import timm
import torch

from harness.cost.bench import write_ratio_table
from harness.explainers import get_explainer
from harness.models.classifier import ViTClassifier

BATCH = 8


@pytest.mark.slow
def test_transformer_attribution_batch8_vs_batch1_loop():
    torch.manual_seed(0)
    vit = timm.create_model("vit_base_patch16_224.orig_in21k_ft_in1k", pretrained=False)
    model = ViTClassifier(vit, (0.5,) * 3, (0.5,) * 3, name="vit_base_patch16_224 (random weights)")
    images = torch.rand(BATCH, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    target = torch.arange(BATCH)
    ta = get_explainer("transformer_attribution")
    ta(model, images[:1], target[:1])  # warm-up
    start = time.perf_counter()
    loop = torch.cat([ta(model, images[i : i + 1], target[i : i + 1]) for i in range(BATCH)])
    loop_s = time.perf_counter() - start
    start = time.perf_counter()
    batched = ta(model, images, target)
    batch_s = time.perf_counter() - start
    torch.testing.assert_close(batched, loop, rtol=0, atol=1e-4)  # the same maps
    rows = [
        {"mode": "batch-1 loop", "batch": 1, "seconds": loop_s / BATCH, "maps_per_second": BATCH / loop_s},
        {"mode": "one batch", "batch": BATCH, "seconds": batch_s / BATCH, "maps_per_second": BATCH / batch_s},
    ]
    write_ratio_table(
        rows,
        lambda row: rows[0],
        "ta_batching",
        "Transformer Attribution on ViT-B/16 (random weights, CPU): batch 8 vs a batch-1 loop",
        (
            f"seconds: wall-clock seconds per map (perf_counter), {BATCH} maps of 224x224 images, torch threads "
            f"{torch.get_num_threads()}; one warm-up map first.",
            "ratio_vs_baseline: seconds per map / the batch-1 loop's, same process (below 1 = batching pays); "
            "maps_per_second: 1 / seconds.",
        ),
    )
    assert batch_s > 0 and loop_s > 0
