"""What the paper-scale tables state: undefined top-1 as n/a, the DDS sample counts as numbers, and the
environment variables README names are read."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.runner.aggregate import segmentation_table
from harness.runner.config import DDSSpec, ExperimentConfig


def _seg_rows(label: int) -> pd.DataFrame:
    base = {
        "method": "rollout",
        "dds": "none",
        "radius_255": 8.0,
        "pred": 3,
        "clean_pred": 3,
        "label": label,
        "correct": 5.0,
        "labeled": 10.0,
        "inter_bg": 2.0,
        "union_bg": 4.0,
        "inter_fg": 3.0,
        "union_fg": 6.0,
        "ap": 0.5,
        "topk_overlap": 0.5,
    }
    return pd.DataFrame([{**base, "item_id": f"i{k}"} for k in range(2)])


def test_unlabelled_segmentation_shows_top1_as_na(tmp_path):
    from harness.report.tables import markdown_table

    table = segmentation_table(_seg_rows(label=-1))
    assert table["top1_under_attack"].isna().all()
    assert "n/a" in markdown_table(table) and "0.00 |" not in markdown_table(table[["top1_under_attack"]])
    assert segmentation_table(_seg_rows(label=3))["top1_under_attack"].tolist() == [1.0]


def test_dds_line_states_the_sample_counts(tmp_path):
    from harness.runner.main import write_tables

    cfg = ExperimentConfig(
        dds=(DDSSpec("fvit", sigma=2 / 255), DDSSpec("re", sigma=2 / 255), DDSSpec("carlini", samples=5)),
        tasks=("segmentation",),
    )
    paths = write_tables(cfg, tmp_path, _seg_rows(label=-1))
    text = paths["segmentation"].read_text()
    assert "variant default" not in text
    assert "fvit: sigma" in text and "samples 2," in text and "samples 5," in text
    assert "samples 10 per clean and 2 per attacked image (Re's counts for segmentation)" in text


def test_readme_environment_variables_are_read(monkeypatch, tmp_path):
    import re

    from harness.cli import build_parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    named = set(re.findall(r"`(FVIT_[A-Z0-9_]+)`", readme))
    sources = "".join(p.read_text() for p in (Path(__file__).resolve().parents[1] / "harness").rglob("*.py"))
    sources += (Path(__file__).resolve().parents[1] / "claims" / "conftest.py").read_text()
    assert named and all(f'"{name}"' in sources for name in named), sorted(n for n in named if f'"{n}"' not in sources)
    monkeypatch.setenv("FVIT_ADM_CHECKPOINT", str(tmp_path / "adm.pt"))
    monkeypatch.setenv("FVIT_ADM_DIR", str(tmp_path / "adm"))
    args = build_parser().parse_args(["convert-adm"])
    assert (args.checkpoint, args.out) == (str(tmp_path / "adm.pt"), str(tmp_path / "adm"))
