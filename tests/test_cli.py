"""The command line: the main job end to end on a small subset, and clear errors for bad input."""

from __future__ import annotations

import pytest
import torch

from harness.cli import build_parser, main

SMALL = ["--limit", "4", "--batch-size", "4", "--samples", "2", "--methods", "rollout", "--radii", "0,8"]


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in sub.choices:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        assert "usage:" in capsys.readouterr().out


def test_run_writes_tables_store_and_report(small_run):
    out, printed = small_run
    assert "<html" not in printed and "read first:" in printed and "report.html" in printed  # the page named
    assert "segmentation: " in printed and "segmentation.md" in printed  # each table's file, not its 300 lines
    assert "Claims this run measures, judged on its own 4 images" in printed  # ends with its own verdicts
    for name in ("segmentation", "perturbation", "faithfulness"):
        text = (out / f"{name}.md").read_text()
        assert "pixel units" in text and "carlini" in text
    assert (out / "rows.sqlite").is_file() and (out / "config.json").is_file()
    page = (out / "report.html").read_text()
    assert "id='gallery'" in page and (out / "figures" / "gallery.png").is_file()


def test_gallery_option_respects_limit_and_zero_disables_it(tmp_path):
    from harness.report.gallery import MapCollector

    run = [
        "run",
        "--limit",
        "2",
        "--batch-size",
        "2",
        "--samples",
        "1",
        "--methods",
        "raw_attention",
        "--radii",
        "0,8",
        "--tasks",
        "segmentation",
        "--threads",
        "1",
    ]
    assert main([*run, "--gallery", "5", "--out", str(tmp_path / "two")]) == 0  # 5 asked, the run has 2 images
    page = (tmp_path / "two" / "report.html").read_text()
    assert "The first 2 images" in page and "maps, predictions and overlaps of this run" in page
    assert main([*run, "--dds", "", "--gallery", "0", "--out", str(tmp_path / "none")]) == 0
    assert "id='gallery'" not in (tmp_path / "none" / "report.html").read_text()
    assert not (tmp_path / "none" / "figures" / "gallery.png").exists()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--gallery", "-1"])
    assert MapCollector(["a"], "rollout").complete([]) is False


def test_missing_denoiser_folder_is_named(tmp_path, capsys):
    code = main(["run", *SMALL, "--denoiser", str(tmp_path / "missing"), "--out", str(tmp_path)])
    assert code == 2
    assert "missing" in capsys.readouterr().err


def test_out_of_range_radius_is_refused(tmp_path, capsys):
    assert main(["run", *SMALL, "--radii", "300", "--out", str(tmp_path)]) == 2
    assert "1/255" in capsys.readouterr().err


def test_wrong_image_size_is_named(mini_vit):
    with pytest.raises(ValueError, match=r"\(B, 3, 64, 64\)"):
        mini_vit(torch.rand(1, 3, 32, 32))


def test_dds_option_gives_each_variant_its_own_defaults():
    from harness.cli import _config_from_args

    args = build_parser().parse_args(["run", "--dds", "carlini,fvit"])
    carlini, fvit = _config_from_args(args).dds
    assert carlini.sigma == pytest.approx(32 / 255, abs=1e-4)  # the embedded config's carlini setting
    assert fvit.sigma is None and fvit.samples is None  # fvit's own default, not carlini's sigma
    both = _config_from_args(build_parser().parse_args(["run", "--dds", "carlini,fvit", "--sigma", "0.01"])).dds
    assert [d.sigma for d in both] == [0.01, 0.01]


def test_a_variant_listed_twice_is_refused():
    from harness.runner.config import DDSSpec, ExperimentConfig

    with pytest.raises(ValueError, match="more than once"):
        ExperimentConfig(dds=(DDSSpec("carlini", 0.1), DDSSpec("carlini", 0.2)))


def test_attack_option_selects_the_adaptive_attack(tmp_path, capsys):
    from harness.cli import _config_from_args

    cfg = _config_from_args(build_parser().parse_args(["run", "--attack", "adaptive", "--methods", "rollout"]))
    assert cfg.attack == "adaptive"
    # Every method now has a differentiable form or a named surrogate; a run cannot take the targeted
    # loss (it has no target maps), and says so in one line before computing anything.
    config = tmp_path / "adaptive.yaml"
    config.write_text("attack: adaptive\nadaptive_loss: targeted\nmethods: [rollout]\nlimit: 1\n")
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    assert "adaptive_loss" in capsys.readouterr().err


def test_version_is_printed(capsys):
    from harness import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"fvit-bench {__version__}"
