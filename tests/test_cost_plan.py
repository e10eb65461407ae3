"""`fvit-bench cost --plan`: call counts derived from the configs, checked by hand and against a real run's
UNet calls (which also shows the purified images are shared by every explanation method, for fvit and re)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from harness.cli import main
from harness.cost.plan import CallTimes, call_times, calls_per_image, plan_table
from harness.runner.config import DDSSpec, ExperimentConfig

SIGMA = 2 / 255  # [0,1] pixel units: 8 FViT sampling steps


def test_counts_by_hand():
    cfg = ExperimentConfig(
        methods=("rollout", "transformer_attribution"),
        radii_255=(0, 8),
        tasks=("segmentation",),
        dds=(DDSSpec("carlini", samples=4), DDSSpec("re")),
        limit=None,
    )
    calls = calls_per_image(cfg)
    assert calls["attack"] == {"unet": 0, "vit_forward": 1 + 11, "vit_backward": 10}
    assert calls["plain"] == {"unet": 0, "vit_forward": 2 * 2, "vit_backward": 2 * 1}
    assert calls["carlini"] == {"unet": 2 * 4, "vit_forward": 2 * (4 + 4 + 4), "vit_backward": 2 * 4}
    # re at its paper sigma: 45 steps; m = 10 clean + 2 attacked in segmentation
    assert calls["re"]["unet"] == (10 + 2) * 45
    pert = calls_per_image(cfg.replace(tasks=("perturbation",), explain_classes=("pred", "target")))
    assert pert["re"]["unet"] == (2 + 2) * 45  # Re's perturbation test: m = 2 on clean inputs too
    assert pert["plain"]["vit_forward"] == 2 * 2 * (2 * (1 + 18))  # radii x modes x methods x (map + curves)


def test_plan_totals_and_gpu_hours():
    cfg = ExperimentConfig(
        dataset="imagenet-seg",
        methods=("rollout",),
        radii_255=(0,),
        tasks=("segmentation",),
        dds=(DDSSpec("fvit"),),
        limit=None,
    )
    table = plan_table([cfg], times=CallTimes(unet=1.0, vit_forward=0.0, vit_backward=0.0))
    fvit = table[table["part"] == "fvit"].iloc[0]
    assert fvit["images"] == 4276 and fvit["unet_calls"] == 4276 * 2 * 45
    assert fvit["gpu_hours"] == pytest.approx(4276 * 90 / 3600)
    assert table.iloc[-1]["config"] == "total" and table.iloc[-1]["unet_calls"] == fvit["unet_calls"]


def test_cli_plan_writes_the_paper_matrix(tmp_path, capsys):
    assert main(["cost", "--plan", "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "paper_plan.csv")
    assert set(table["config"]) == {"paper-vit-b16-seg", "paper-vit-b16-perturbation", "total"}
    assert table.iloc[-1]["gpu_hours"] > 0 and "GPU-hours" in capsys.readouterr().out


def test_a_run_makes_exactly_the_planned_unet_calls_shared_by_methods(tmp_path, monkeypatch):
    """fvit and re: the UNet sees each purified sample once per (image, radius), whatever the number of methods.

    The calls are counted on a small random UNet (tests/tiny_models.py): how many there are does not depend on
    the UNet's weights or size, only on the run's DDS settings and how it shares the purified samples."""
    from tiny_models import tiny_denoiser

    import harness.runner.experiment as experiment
    from harness.cost.bench import write_ratio_table

    seen: list[int] = []
    den = tiny_denoiser()
    den.unet.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[0]))
    monkeypatch.setattr(experiment, "load_denoiser_for", lambda cfg: den)
    rows = []
    for methods in (("raw_attention",), ("raw_attention", "rollout", "attn_gradcam")):
        cfg = ExperimentConfig(
            name="shared",
            methods=methods,
            radii_255=(0, 8),
            tasks=("segmentation",),
            limit=1,
            batch_size=1,
            dds=(DDSSpec("fvit", sigma=SIGMA), DDSSpec("re", sigma=SIGMA)),
        )
        seen.clear()
        experiment.run_experiment(cfg, tmp_path / str(len(methods)), progress=False)
        planned = {v: calls_per_image(cfg)[v]["unet"] for v in ("fvit", "re")}
        assert sum(seen) == planned["fvit"] + planned["re"]
        rows.append(
            {
                "methods": len(methods),
                "unet_image_calls": sum(seen),
                "planned": sum(planned.values()),
                "seconds": float(sum(seen)),
            }
        )
    assert rows[0]["unet_image_calls"] == rows[1]["unet_image_calls"]  # shared: 3 methods cost the UNet as 1
    write_ratio_table(
        rows,
        lambda row: rows[0],
        "shared_purification",
        "Purified images are shared across explanation methods (fvit and re DDS, embedded world)",
        (
            "unet_image_calls: images through the UNet in a run of 1 image x radii 0, 8/255 with fvit and re "
            f"(sigma {SIGMA * 255:.0f}/255 pixel units: 8 steps per sample; re m = 10 clean / 2 attacked); planned: "
            "`fvit-bench cost --plan`'s count for the same config.",
            "seconds: here the UNet image-call count (not a time), so ratio_vs_baseline = calls with 3 methods / "
            "with 1 method (1 = the purification is shared).",
        ),
    )


def test_methods_attacked_through_one_surrogate_add_no_unet_call(tmp_path, monkeypatch):
    """The adaptive attack: lrp and transformer_attribution are both attacked through generic attention, so
    they share the attacked batch and its purified samples; the second method adds no UNet call."""
    from tiny_models import tiny_denoiser

    import harness.runner.experiment as experiment

    seen: list[int] = []
    den = tiny_denoiser()
    den.unet.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[0]))
    monkeypatch.setattr(experiment, "load_denoiser_for", lambda cfg: den)
    counts = []
    for methods in (("lrp",), ("lrp", "transformer_attribution")):
        cfg = ExperimentConfig(
            name="adaptive-shared",
            methods=methods,
            radii_255=(0, 8),
            tasks=("segmentation",),
            limit=1,
            batch_size=1,
            attack="adaptive",
            attack_steps=1,
            eot_samples=1,
            dds=(DDSSpec("carlini", sigma=SIGMA, samples=2),),
        )
        seen.clear()
        with pytest.warns(UserWarning, match="surrogate"):
            experiment.run_experiment(cfg, tmp_path / str(len(methods)), progress=False)
        counts.append(sum(seen))
    assert counts[0] > 0 and counts[1] == counts[0]


def test_the_identity_control_reuses_the_plain_adaptive_attack(tmp_path, monkeypatch):
    """Through the identity purifier (m = 1) the adaptive attack is the plain one bit for bit, so a run
    with the identity control attacks once per method, and its identity rows equal the plain rows."""
    import harness.runner.experiment as experiment
    from harness.attacks.adaptive import adaptive_attack
    from harness.models.mini import load_mini_vit
    from harness.runner.experiment import load_rows

    model = load_mini_vit()
    images = torch.rand(2, 3, model.image_size, model.image_size, generator=torch.Generator().manual_seed(0))
    kw = dict(method="rollout", eot_samples=4, steps=2, loss="topk", seed=3)
    plain = adaptive_attack(model, images, 8 / 255, **kw)
    assert torch.equal(adaptive_attack(model, images, 8 / 255, variant="identity", **kw), plain)

    calls = []
    real = experiment.adaptive_attack
    monkeypatch.setattr(experiment, "adaptive_attack", lambda *a, **k: calls.append(k["variant"]) or real(*a, **k))
    cfg = ExperimentConfig(
        name="adaptive-identity",
        methods=("rollout",),
        radii_255=(0, 8),
        tasks=("segmentation",),
        limit=2,
        batch_size=2,
        attack="adaptive",
        attack_steps=2,
        dds=(DDSSpec("identity"),),
    )
    experiment.run_experiment(cfg, tmp_path, progress=False)
    assert calls == [None]
    rows = load_rows(tmp_path, cfg)
    attacked = rows[rows["radius_255"] > 0].set_index(["dds", "item_id"]).sort_index()
    columns = ["pred", "topk_overlap", "correct", "inter_fg"]
    assert attacked.loc["identity", columns].equals(attacked.loc["none", columns])


def test_measured_seconds_feed_the_plan(tmp_path):
    """`--unet-seconds/--vit-seconds/--vit-backward-seconds` (what scripts/gpu_smoke.sh measures) set the
    plan's per-call seconds: GPU-hours = calls x measured seconds, summed."""
    argv = ["cost", "--plan", "--out", str(tmp_path), "--unet-seconds", "0.02", "--vit-seconds", "0.001"]
    assert main([*argv, "--vit-backward-seconds", "0.005"]) == 0
    total = pd.read_csv(tmp_path / "paper_plan.csv").iloc[-1]
    by_hand = total["unet_calls"] * 0.02 + total["vit_forward_calls"] * 0.001 + total["vit_backward_calls"] * 0.005
    assert total["gpu_hours"] == pytest.approx(by_hand / 3600)
    assert main(argv) == 0  # the backward defaults to 2 x the forward
    total = pd.read_csv(tmp_path / "paper_plan.csv").iloc[-1]
    by_hand = total["unet_calls"] * 0.02 + total["vit_forward_calls"] * 0.001 + total["vit_backward_calls"] * 0.002
    assert total["gpu_hours"] == pytest.approx(by_hand / 3600)


def test_call_times_defaults_and_errors():
    assert call_times() == CallTimes()
    assert call_times(vit_seconds=0.5).vit_backward == 1.0
    assert call_times(1.0, 0.5, 0.7) == CallTimes(unet=1.0, vit_forward=0.5, vit_backward=0.7)
    with pytest.raises(ValueError, match="unet-seconds must be a positive"):
        call_times(unet_seconds=-1.0)
