"""Baseline maps: random is a function of the input, centre ignores it, constant is degenerate."""

from __future__ import annotations

import torch

from harness.explainers.registry import baseline_names, get_explainer, names
from harness.models.mini import load_mini_vit


def test_baselines_are_registered_apart_from_the_explanation_methods():
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
    assert cfg.resolved_methods() == ("rollout", "random_map")  # an explicit list is kept as given


def test_a_run_of_every_method_adds_the_baseline_maps_unless_told_not_to():
    from harness.runner.config import ExperimentConfig

    every = ExperimentConfig()
    assert every.resolved_methods() == (*names(), *baseline_names())
    assert ExperimentConfig(baselines=False).resolved_methods() == tuple(names())
    assert ExperimentConfig(methods=("rollout",), baselines=True).resolved_methods() == ("rollout", *baseline_names())
    listed = ExperimentConfig(methods=("rollout", "random_map"), baselines=True)
    assert listed.resolved_methods().count("random_map") == 1
    # The adaptive attack cannot differentiate a baseline map: left out of "every method" there.
    assert not set(baseline_names()) & set(ExperimentConfig(attack="adaptive").resolved_methods())
    # `baselines` hashes through the methods it resolves to: false keeps the hash of a run of every method
    # made before baselines were added, and an explicit list with baselines = the same list written out.
    assert "baselines" not in every.identity_dict()
    assert every.config_hash() != ExperimentConfig(baselines=False).config_hash()
    assert (
        ExperimentConfig(methods=("rollout",), baselines=True).config_hash()
        == ExperimentConfig(methods=("rollout", *baseline_names())).config_hash()
    )


def test_report_rebuilds_a_run_of_every_method_made_before_baselines_joined(tmp_path, monkeypatch):
    """A config.json without `baselines` comes from a run of every method without the baseline maps:
    `fvit-bench report` rebuilds it from its own store instead of refusing another config hash."""
    import json

    from harness.cli import main

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--limit",
                "1",
                "--batch-size",
                "1",
                "--no-baselines",
                "--dds",
                "",
                "--radii",
                "0",
                "--tasks",
                "segmentation",
                "--gallery",
                "0",
                "--threads",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    data = json.loads((out / "config.json").read_text())
    assert data.pop("baselines") is False and data["methods"] == []
    (out / "config.json").write_text(json.dumps(data))  # as an older fvit-bench wrote it
    assert main(["report", "--out", str(out), "--gallery", "0"]) == 0
    assert "random_map" not in (out / "report.md").read_text()
