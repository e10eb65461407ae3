"""Captum attributions as explainers (`captum:<Class>(option=value, ...)`, harness.explainers.captum_attr).

The name and error tests need no Captum; the rest skip without it (optional extra `captum`). Tiny random
models: the checks compare the wrapper with Captum's own call, not map quality.
"""

from __future__ import annotations

import sys

import pytest
import torch

from harness.explainers.captum_attr import INSTALL_HINT, REDUCTIONS, canonical_name, parse_name
from harness.explainers.registry import get_explainer, get_spec, names, normalise_maps, split_names
from harness.runner.config import ConfigError, ExperimentConfig, build


@pytest.fixture(scope="module")
def world():
    from tiny_models import tiny_vit

    torch.manual_seed(1)
    return tiny_vit().eval(), torch.rand(3, 3, 64, 64)


def test_names_parse_to_one_spelling_and_split_outside_parentheses():
    assert parse_name("captum:IntegratedGradients( n_steps = 32 , method='riemann_trapezoid')") == (
        "IntegratedGradients",
        {"n_steps": 32, "method": "riemann_trapezoid"},
    )
    assert canonical_name("captum:Occlusion(strides=(3, 4, 4),sliding_window_shapes=(3,8,8))") == (
        "captum:Occlusion(sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4))"
    )
    assert canonical_name("rollout") == "rollout"
    text = "rollout, captum:Occlusion(sliding_window_shapes=(3,8,8), strides=4),captum:Saliency"
    assert split_names(text) == [
        "rollout",
        "captum:Occlusion(sliding_window_shapes=(3,8,8), strides=4)",
        "captum:Saliency",
    ]
    for bad in ("captum:IntegratedGradients(32)", "captum:IntegratedGradients(n_steps=x)", "captum:", "captum:1x"):
        with pytest.raises(ValueError, match="captum:"):
            parse_name(bad)


def test_without_captum_the_message_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "captum", None)  # import captum now raises ImportError
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    with pytest.raises(ImportError, match=r"pip install fvit-bench\[captum\]"):
        get_spec("captum:NotCachedYet")
    with pytest.raises(ConfigError, match=r"pip install fvit-bench\[captum\]"):
        build(lambda: ExperimentConfig(methods=("captum:NotCachedYet",)))
    assert "[captum]" in INSTALL_HINT


def test_integrated_gradients_is_captums_own_reduced_and_normalised(world):
    captum_attr = pytest.importorskip("captum.attr")
    model, images = world
    target = torch.tensor([0, 3, 5])
    maps = get_explainer("captum:IntegratedGradients(n_steps=4)")(model, images, target)
    ref = captum_attr.IntegratedGradients(model).attribute(
        images.clone().requires_grad_(True), baselines=torch.zeros_like(images), target=target, n_steps=4
    )
    assert torch.allclose(maps, normalise_maps(ref.abs().sum(dim=1)), atol=1e-5)
    # The same method with a grey baseline and the l2 rule; options by keyword give the same explainer.
    grey = get_explainer("captum:IntegratedGradients", n_steps=4, baselines=0.5, reduce="l2")(model, images, target)
    ref = captum_attr.IntegratedGradients(model).attribute(
        images.clone().requires_grad_(True), baselines=torch.full_like(images, 0.5), target=target, n_steps=4
    )
    assert torch.allclose(grey, normalise_maps(ref.norm(dim=1)), atol=1e-5)
    # A batch explains its images independently (what DDS relies on).
    alone = get_explainer("captum:IntegratedGradients(n_steps=4)")(model, images[1:2], target[1:2])
    assert torch.allclose(alone, maps[1:2], atol=1e-5)


def test_every_reduction_rule_and_the_predicted_class_by_default(world):
    captum_attr = pytest.importorskip("captum.attr")
    model, images = world
    pred = model(images).argmax(dim=1)
    grads = captum_attr.Saliency(model).attribute(images.clone().requires_grad_(True), target=pred, abs=False)
    for rule, reduce in REDUCTIONS.items():
        maps = get_explainer(f"captum:Saliency(abs=False, reduce={rule!r})")(model, images)
        assert torch.allclose(maps, normalise_maps(reduce(grads)), atol=1e-5), rule


def test_sampling_methods_are_seeded_without_touching_the_callers_stream(world):
    pytest.importorskip("captum.attr")
    model, images = world
    shap = get_explainer("captum:GradientShap(n_samples=3, stdevs=0.05)")
    torch.manual_seed(7)
    first = shap(model, images)
    after = torch.rand(1)
    torch.manual_seed(7)
    assert torch.equal(shap(model, images), first) and torch.equal(torch.rand(1), after)
    other = get_explainer("captum:GradientShap(n_samples=3, seed=1, stdevs=0.05)")(model, images)
    assert not torch.equal(other, first)


def test_occlusion_needs_its_window_and_runs_with_it(world):
    pytest.importorskip("captum.attr")
    model, images = world
    with pytest.raises(TypeError, match=r"needs option\(s\) \['sliding_window_shapes'\]"):
        get_explainer("captum:Occlusion")
    maps = get_explainer("captum:Occlusion(sliding_window_shapes=(3, 16, 16), strides=(3, 16, 16))")(model, images)
    assert maps.shape == (3, 64, 64) and float(maps.amax()) == 1.0
    assert float(maps[:, :16, :16].flatten(1).std(dim=1).max()) < 1e-6  # one occlusion window, one value


def test_clear_errors_and_the_registry_listing_is_unchanged(world):
    pytest.importorskip("captum.attr")
    before = names(baselines=True)
    with pytest.raises(KeyError, match="no attribution class 'Nope'.*IntegratedGradients"):
        get_spec("captum:Nope")
    with pytest.raises(TypeError, match=r"LayerGradCam is not an \(inputs, target\) attribution.*\['layer'\]"):
        get_spec("captum:LayerGradCam")
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['foo'\]; options are \['abs', 'reduce', 'seed'\]"):
        get_spec("captum:Saliency(foo=1)")
    with pytest.raises(ValueError, match="reduce='x'; choose from"):
        get_spec("captum:Saliency(reduce='x')")
    with pytest.raises(ValueError, match="baselines=2; a constant in"):
        get_spec("captum:IntegratedGradients(baselines=2)")
    assert names(baselines=True) == before  # plug-in names never join a run of "every method"
    assert get_spec("captum:Saliency").is_class_specific()


def test_configs_accept_captum_methods_in_one_spelling():
    pytest.importorskip("captum.attr")
    cfg = ExperimentConfig(methods=("captum:IntegratedGradients( n_steps=8 )", "rollout"))
    assert cfg.methods == ("captum:IntegratedGradients(n_steps=8)", "rollout")
    assert (
        cfg.config_hash()
        == ExperimentConfig(methods=("captum:IntegratedGradients(n_steps=8)", "rollout")).config_hash()
    )
    with pytest.raises(ConfigError, match="no attribution class 'Nope'"):
        build(lambda: ExperimentConfig(methods=("captum:Nope",)))
    with pytest.raises(ConfigError, match="adaptive attack has no differentiable form"):
        build(lambda: ExperimentConfig(methods=("captum:Saliency",), attack="adaptive"))


@pytest.mark.parametrize("variants", ["carlini", pytest.param("all", marks=pytest.mark.slow)])
def test_a_captum_method_runs_through_every_dds_variant(world, variants):
    pytest.importorskip("captum.attr")
    from tiny_models import tiny_denoiser

    from harness.smoothing.dds import purifier_names, smooth

    model, images = world
    denoiser = tiny_denoiser()
    plain = get_explainer("captum:IntegratedGradients(n_steps=2)")
    for variant in purifier_names() if variants == "all" else [variants]:
        maps = smooth(plain, denoiser, variant, sigma=1.5 / 255, samples=2, seed=0)(model, images[:1])
        assert maps.shape == (1, 64, 64) and torch.isfinite(maps).all(), variant


@pytest.mark.slow
def test_two_captum_methods_run_through_dds_and_the_claims_on_the_embedded_world(tmp_path, monkeypatch):
    """`fvit-bench run --methods captum:...,captum:... --dds carlini` on the embedded world's shipped models: tables,
    and the verdicts of the claims every built-in method has, for both methods (the numbers are not checked)."""
    pytest.importorskip("captum.attr")
    import contextlib
    import io

    from harness.cli import main
    from harness.report.run_verdicts import read_run_verdicts

    methods = ["captum:IntegratedGradients(n_steps=8)", "captum:Saliency"]
    args = ["run", "--methods", ",".join(methods), "--dds", "carlini", "--samples", "2", "--limit", "4"]
    args += ["--batch-size", "4", "--radii", "0,8", "--threads", "1", "--gallery", "0", "--out", str(tmp_path)]
    monkeypatch.chdir(tmp_path)  # the report looks for reports/ here: none
    printed = io.StringIO()
    before = torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(printed):
            assert main(args) == 0
    finally:
        torch.set_num_threads(before)
    table = read_run_verdicts(tmp_path)
    assert table is not None and set(table["method"]) == set(methods)
    per_method = table.groupby("method")["group"].agg(set)
    assert all(groups == {"fvit-1", "fvit-2", "re-3"} for groups in per_method)
    assert (table.groupby("method").size() == 11).all() and table["outcome"].isin(
        ["held", "contradicted", "inconclusive", "vacuous"]
    ).all()
    assert "captum:IntegratedGradients(n_steps=8)" in (tmp_path / "segmentation.md").read_text()
    assert "(of 2 methods)" in printed.getvalue()
