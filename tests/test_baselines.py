"""Baseline maps: random is a function of the input, centre ignores it, constant is degenerate."""

from __future__ import annotations

import torch

from harness.explainers.registry import baseline_names, get_explainer, names
from harness.models.mini import load_mini_vit


def test_baselines_are_registered_but_not_default_methods():
    assert set(baseline_names()) == {"random_map", "centre_map", "constant_map"}
    assert not set(baseline_names()) & set(names()) and set(baseline_names()) <= set(names(baselines=True))


def test_each_baseline_behaves_as_documented():
    model = load_mini_vit()
    images = torch.rand(3, 3, model.image_size, model.image_size, generator=torch.Generator().manual_seed(0))
    random = get_explainer("random_map")
    assert torch.equal(random(model, images), random(model, images.clone()))  # same input, same map
    moved = random(model, (images + 1 / 255).clamp(0, 1))
    assert not torch.equal(random(model, images)[0], moved[0])  # any change of input, another map
    centre = get_explainer("centre_map")(model, images)
    assert torch.equal(centre[0], centre[1]) and centre.shape == images[:, 0].shape
    s = model.image_size
    assert centre[0, s // 2, s // 2] > centre[0, 0, 0]
    assert torch.count_nonzero(get_explainer("constant_map")(model, images)) == 0


def test_a_run_may_name_baseline_maps():
    from harness.runner.config import ExperimentConfig

    cfg = ExperimentConfig(methods=("rollout", "random_map"))
    assert cfg.resolved_methods() == ("rollout", "random_map")
    assert "random_map" not in ExperimentConfig().resolved_methods()
