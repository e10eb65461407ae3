"""The cost table counts FLOPs on one image: the count is linear in the batch, for every method and with DDS
(purification and explanation of each sample: linear when the method and the UNet are)."""

from __future__ import annotations

import pytest

from harness.cost.timing import count_flops, embedded_images, embedded_models
from harness.explainers.registry import get_explainer, names
from harness.smoothing.dds import smooth


@pytest.fixture(scope="module")
def world():
    model, denoiser, _ = embedded_models(random_weights=True)
    return model, denoiser, embedded_images(2)


def _linear(fn, model, images) -> None:
    one = count_flops(fn, model, images[:1])
    assert one > 0 and count_flops(fn, model, images) == 2 * one, fn


@pytest.mark.parametrize("method", names())
def test_each_methods_flops_are_linear_in_the_batch(method, world):
    model, _, images = world
    _linear(get_explainer(method), model, images)


def test_dds_flops_are_linear_in_the_batch(world):
    model, denoiser, images = world
    _linear(smooth(get_explainer("rollout"), denoiser, "carlini", sigma=16 / 255, samples=2), model, images)


def test_samples_by_variant_sets_each_variants_m_in_one_table():
    """One table, each variant at its own m (the claims' carlini m = 8 beside the identity control's m = 1)."""
    from tiny_models import tiny_denoiser, tiny_vit

    from harness.cost.timing import CostSettings, cost_table

    settings = CostSettings(
        images=1, batch_size=1, warmup=False, samples_by_variant=(("carlini", 3),), carbon_intensity_g_per_kwh=200.0
    )
    rows = cost_table(
        tiny_vit(), tiny_denoiser(), embedded_images(1), ["raw_attention"], ["carlini", "identity"], settings
    )
    m = rows.set_index("dds")["samples_per_image"]
    assert m["carlini"] == 3 and m["identity"] == 1 and m["none"] == 1
