"""The report page renders in headless Chromium with its tables and figures."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from harness.report.html import build_report
from harness.report.plots import plot_tables

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def report_dir(tmp_path: Path) -> Path:
    seg = pd.DataFrame(
        [
            {"method": m, "dds": d, "radius_255": r, "pixel_accuracy": 70 + r / 8 + (d != "none"), "mIoU": 50.0,
             "mAP": 80.0, "n_images": 10}
            for m in ("rollout", "raw_attention") for d in ("none", "carlini") for r in (0.0, 8.0)
        ]
    )
    seg.to_csv(tmp_path / "segmentation.csv", index=False)
    (tmp_path / "segmentation.md").write_text("# t\n\n- radius_255: PGD radius in 1/255 pixel units\n")
    verdicts = pd.DataFrame([
        {"claim": f"embedded-fvit-1-{m}-mIoU", "world": "embedded", "group": "fvit-1", "method": m,
         "statement": "long words", "metric": "mIoU (percent)", "verdict": v, "delta": 0.5}
        for m, v in (("rollout", "held"), ("attn_gradcam", "xfailed"))
    ])
    verdicts.to_csv(tmp_path / "verdicts.csv", index=False)
    figures = plot_tables({"segmentation": seg}, tmp_path / "figures")
    assert {p.name for p in figures} == {"pixel_accuracy_vs_radius.png", "mIoU_vs_radius.png", "mAP_vs_radius.png"}
    build_report(tmp_path, {"segmentation": tmp_path / "segmentation.csv", "verdicts": tmp_path / "verdicts.csv"},
                 [(p.stem, p) for p in figures], title="test report")
    return tmp_path


def test_report_files_hold_tables_and_figures(report_dir):
    page = (report_dir / "report.html").read_text()
    assert page.count("<table") == 3 and page.count("<img") == 3  # summary grid, verdicts, segmentation
    assert "Claims at a glance" in page and "long words" not in page
    assert "1/255 pixel units" in page
    md = (report_dir / "report.md").read_text()
    assert "## Claim verdicts" in md and "figures/mIoU_vs_radius.png" in md


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package `chromium`; .ci/run installs it)")
def test_report_renders_in_headless_chromium(report_dir, tmp_path):
    url = (report_dir / "report.html").as_uri()
    profile = tmp_path / "profile"
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    assert dom.count("<table") == 3
    assert "embedded-fvit-1-rollout-mIoU" in dom
    loaded = re.search(r'data-images-loaded="(\d+)"', dom)
    total = re.search(r'data-images-total="(\d+)"', dom)
    assert loaded and total, "the page's load script did not run"
    assert int(total.group(1)) == 3 and int(loaded.group(1)) == 3, "some figures did not decode"
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
                    "--window-size=1200,900", url], capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 10_000


def test_verdict_summary_is_a_claim_by_method_grid():
    from harness.report.html import verdict_summary

    verdicts = pd.DataFrame([
        {"world": "embedded", "group": g, "method": m, "metric": "mIoU (percent)", "verdict": v}
        for g, m, v in (("fvit-1", "rollout", "held"), ("fvit-1", "lrp", "failed"), ("anchor", "lrp", "skipped"))
    ])
    grid = verdict_summary(verdicts)
    assert list(grid.columns) == ["world", "claim", "metric", "lrp", "rollout"]
    assert grid.iloc[0][["lrp", "rollout"]].tolist() == ["failed", "held"] and len(grid) == 1
    assert verdict_summary(pd.DataFrame([{"claim": "x", "verdict": "held"}])) is None
