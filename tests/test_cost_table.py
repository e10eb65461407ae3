"""The cost table: every registered method and DDS variant, ratios with/without DDS, report and CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.cost.timing import (
    MEASURES,
    PLAIN,
    RATIO_COLUMNS,
    CostSettings,
    add_ratios,
    cost_table,
    embedded_images,
    write_cost_report,
)
from harness.explainers.registry import names
from harness.smoothing.dds import VARIANTS, get_variant, purifier_names

# Tiny settings: 1 image, m = 1, sigma = 1.5/255 pixel units (FViT's rule: 3 denoising steps).
TINY = CostSettings(images=1, batch_size=1, warmup=False, sigma=1.5 / 255, samples=1, carbon_intensity_g_per_kwh=200.0)


@pytest.fixture(scope="module")
def tiny_world():
    """Random models smaller than the embedded world's (tests/tiny_models.py): the table's bookkeeping does not
    depend on model size, and its 56 cells and their FLOP counts (every op through torch's FlopCounterMode) get
    cheap. `embedded_models` itself runs in the CLI test below (--random-weights)."""
    from tiny_models import tiny_denoiser, tiny_vit

    return tiny_vit(), tiny_denoiser(), embedded_images(2)


@pytest.fixture(scope="module")
def table(tiny_world):
    model, denoiser, images = tiny_world
    return cost_table(model, denoiser, images, settings=TINY)


def test_every_registered_method_and_variant_is_present_once(table):
    expected = {(m, d) for m in names() for d in [PLAIN, *purifier_names()]}
    assert set(zip(table["method"], table["dds"], strict=True)) == expected
    assert len(table) == len(expected)


def test_measures_are_positive_and_units_consistent(table):
    assert (table["seconds_per_image"] > 0).all()
    assert (table["energy_kwh_per_image"] > 0).all()
    expected_kg = table["energy_kwh_per_image"] * 200.0 / 1000
    np.testing.assert_allclose(table["kg_co2eq_per_image"], expected_kg, rtol=1e-12)
    assert (table["gpu_hours_per_image"] == 0).all()  # CPU run
    assert table["device"].str.startswith("cpu").all()


def test_unet_calls_follow_each_variant(table, tiny_world):
    _, denoiser, _ = tiny_world
    for row in table.itertuples():
        if row.dds == PLAIN:
            assert row.unet_calls_per_image == 0 and np.isnan(row.sigma_255)
        else:
            calls = get_variant(row.dds).unet_calls(denoiser, TINY.sigma)
            assert row.unet_calls_per_image == TINY.samples * calls
            assert row.sigma_255 == pytest.approx(1.5)


def test_ratios_divide_by_the_plain_row_of_the_same_method(table):
    plain = table[table["dds"] == PLAIN].set_index("method")
    for row in table.to_dict("records"):
        for measure, ratio in RATIO_COLUMNS.items():
            assert row[ratio] == pytest.approx(row[measure] / plain.loc[row["method"], measure], rel=1e-12)
    assert (table.loc[table["dds"] == PLAIN, list(RATIO_COLUMNS.values())] == 1.0).all().all()


def test_add_ratios_on_a_hand_built_table():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"method": ["a", "a", "b", "b"], "dds": [PLAIN, "x", "x", PLAIN]})
    for m in MEASURES:
        df[m] = rng.uniform(0.5, 2.0, size=4)
    out = add_ratios(df)
    for m, r in RATIO_COLUMNS.items():
        assert out.loc[1, r] == df.loc[1, m] / df.loc[0, m]
        assert out.loc[2, r] == df.loc[2, m] / df.loc[3, m]
    assert list(df.columns) == ["method", "dds", *MEASURES]  # input untouched


def test_add_ratios_without_plain_row_raises():
    df = pd.DataFrame({"method": ["a"], "dds": ["x"], **{m: [1.0] for m in MEASURES}})
    with pytest.raises(ValueError, match="no plain"):
        add_ratios(df)


def test_zero_plain_measure_gives_nan_ratio_not_inf():
    df = pd.DataFrame({"method": ["a", "a"], "dds": [PLAIN, "x"], **{m: [0.0, 1.0] for m in MEASURES}})
    assert add_ratios(df)[list(RATIO_COLUMNS.values())].isna().all().all()


def test_variant_needing_a_denoiser_without_one_raises(tiny_world):
    model, _, images = tiny_world
    needing = [v for v in VARIANTS if get_variant(v).needs_denoiser]
    if not needing:
        pytest.skip("no registered DDS variant needs a denoiser")
    with pytest.raises(ValueError, match="needs a denoiser"):
        cost_table(model, None, images, methods=["rollout"], variants=needing[:1], settings=TINY)


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="images"):
        CostSettings(images=0)


def test_report_names_device_units_and_conventions(table, tmp_path):
    csv_path, md_path = write_cost_report(table, tmp_path, ["context line"])
    md = md_path.read_text()
    assert "Device: cpu" in md and "context line" in md and "Conventions:" in md
    assert "gCO2eq/kWh): 200.000" in md
    for column in (*MEASURES, *RATIO_COLUMNS.values()):
        assert column in md
    back = pd.read_csv(csv_path)
    assert len(back) == len(table) and {"device", "cpu_power_mode"} <= set(back.columns)


def test_cli_cost_writes_the_report(tmp_path):
    from harness.cli import main

    rc = main(
        [
            "cost",
            "--methods",
            "rollout",
            "--dds",
            "carlini,noise_only",
            "--images",
            "1",
            "--batch-size",
            "1",
            "--samples",
            "1",
            "--sigma",
            str(8 / 255),
            "--random-weights",
            "--carbon-intensity",
            "100",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    df = pd.read_csv(tmp_path / "cost.csv")
    assert list(df["dds"]) == [PLAIN, "carlini", "noise_only"]
    assert (df["carbon_intensity_g_per_kwh"] == 100).all()
    assert "random weights (requested)" in (tmp_path / "cost.md").read_text()


def test_cli_cost_options_all_have_help():
    import argparse

    from harness.cli import build_parser

    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    cost = subparsers.choices["cost"]
    assert cost.description and all(action.help for action in cost._actions)


def test_cost_takes_runs_dds_sigma_by_default(tiny_world):
    """`fvit-bench cost` and `fvit-bench run` share one default sigma per variant (the run config's)."""
    from harness.cli import run_config_sigmas

    by_variant = run_config_sigmas()
    assert dict(by_variant)["carlini"] == pytest.approx(32 / 255, abs=1e-4)
    model, denoiser, images = tiny_world
    settings = CostSettings(
        images=1, batch_size=1, warmup=False, samples=1, sigma_by_variant=by_variant, carbon_intensity_g_per_kwh=200.0
    )
    rows = cost_table(model, denoiser, images, ["raw_attention"], ["carlini", "fvit"], settings).set_index("dds")
    assert rows.loc["carlini", "sigma_255"] == pytest.approx(32.0, abs=0.01)
    assert rows.loc["fvit", "sigma_255"] == pytest.approx(get_variant("fvit").default_sigma * 255)


def test_counted_flops_match_the_variants_definition(table):
    """DDS does exactly the counted work: m explanations plus m x UNet calls, nothing hidden or skipped."""
    dds = table[table["dds"] != PLAIN]
    assert (dds["flops_per_image"] > 0).all()
    np.testing.assert_allclose(dds["flops_ratio_vs_plain"], dds["predicted_flops_ratio"], rtol=1e-6)
    identity = table[table["dds"] == "identity"]
    assert (identity["flops_ratio_vs_plain"] == 1.0).all()  # m = 1 (TINY), no UNet: no extra work
