"""The run report: summary first, intervals, conventions once, readable figures, a gallery, and matching
claims only; it renders in headless Chromium with every figure whole."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from harness.report import intervals as ci

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_report_opens_with_a_summary_of_the_run(small_run):
    out, _ = small_run
    page = (out / "report.html").read_text()
    summary = page[page.index("id='summary'") : page.index("id='verdict-summary'")]
    for needed in (
        "mini-vit",
        "embedded world",
        "4 images",
        "raw_attention, rollout",
        "carlini",
        "32.0/255",
        "0/255, 8/255",
        "config hash",
        "commit",
        "Headline",
        "DDS carlini vs plain at PGD 8/255",
        "rows.sqlite",
        "segmentation.md",
    ):
        assert needed in summary, needed
    assert page.index("id='summary'") < page.index("id='segmentation'")  # summary comes first
    assert "[" in summary and "95% interval" in summary  # the headline states its intervals


def test_report_says_where_the_attack_starts_to_bite(small_run):
    out, _ = small_run
    page = (out / "report.html").read_text()
    assert "id='bite_onset'" in page and "id='conventions-bite_onset'" in page
    md = (out / "report.md").read_text()
    onset = _markdown_table(md, "## Where the attack starts to bite (plain methods)")
    assert list(onset["method"]) == ["raw_attention", "rollout"]
    for text in onset["mIoU"]:  # one attacked radius: bites there, or not up to it
        assert re.match(r"(8/255|none up to 8/255): [+-][0-9.]+ \[[+-][0-9.e+-]+, [+-][0-9.e+-]+\]$", text), text


def test_conventions_appear_once_and_each_table_links_them(small_run):
    out, _ = small_run
    page = (out / "report.html").read_text()
    assert page.count("<h2 id='conventions'>") == 1
    assert page.count("Chefer&#x27;s AUC = trapezoid") == 1 and page.count("radius_255: L-infinity") == 1
    for name in ("segmentation", "perturbation", "faithfulness"):
        assert f"href='#conventions-{name}'" in page and f"id='conventions-{name}'" in page
    md = (out / "report.md").read_text()
    assert len(re.findall(r"^## Conventions$", md, re.M)) == 1 and "(#conventions-perturbation)" in md


def _markdown_table(md: str, heading: str) -> pd.DataFrame:
    """The first pipe table after `heading` in a markdown text."""
    lines = md[md.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append([cell.strip() for cell in line.strip("|").split("|")])
    return pd.DataFrame(table[2:], columns=table[0])


def test_table_intervals_contain_their_values(small_run):
    out, _ = small_run
    page = (out / "report.html").read_text()
    seg = _markdown_table((out / "report.md").read_text(), "## Segmentation under attack")
    for metric in ("pixel_accuracy", "mIoU", "mAP"):
        bounds = seg[f"{metric} 95% CI"].str.strip("[]").str.split(", ", expand=True).astype(float)
        value = seg[metric].astype(float)
        assert (bounds[0] <= value + 1e-3).all() and (value <= bounds[1] + 1e-3).all(), metric
        assert (bounds[0] < bounds[1]).any()
    assert "topk_overlap 95% CI" in page and "positive_auc_chefer 95% CI" in page


def test_claims_grid_only_for_verdicts_of_a_matching_run(tmp_path):
    from harness.report.run_report import claims_grid
    from harness.runner.config import ExperimentConfig

    cfg = ExperimentConfig(methods=("rollout",))
    path = tmp_path / "verdicts.csv"
    assert claims_grid(path, cfg)[0] is None and "No claim verdicts" in claims_grid(path, cfg)[1]
    row = {
        "world": "embedded",
        "group": "fvit-1",
        "form": "relation (level)",
        "control": "",
        "method": "rollout",
        "metric": "mIoU (percent)",
        "outcome": "held",
    }
    pd.DataFrame([row]).to_csv(path, index=False)
    grid, why = claims_grid(path, cfg)
    assert grid is None and "do not name the run" in why
    pd.DataFrame([{**row, "config_hash": "other"}]).to_csv(path, index=False)
    grid, why = claims_grid(path, cfg)
    assert grid is None and "other settings" in why and cfg.config_hash() in why
    pd.DataFrame([{**row, "config_hash": cfg.config_hash(), "n_images": 120, "commit": "abc1234"}]).to_csv(path)
    (frame, source), _ = claims_grid(path, cfg)
    assert frame["rollout"].tolist() == ["held"] and "abc1234" in source and "120" in source


def test_bootstrap_intervals_match_the_normal_approximation_and_pair_images():
    rng = np.random.default_rng(1)
    n = 400
    rows = pd.DataFrame({"topk_overlap": rng.uniform(0, 1, n), "item_id": range(n)})
    lo, hi = ci.interval(rows, "topk_overlap")
    half = 1.96 * rows["topk_overlap"].std() / np.sqrt(n)
    mean = rows["topk_overlap"].mean()
    assert lo == pytest.approx(mean - half, abs=0.01) and hi == pytest.approx(mean + half, abs=0.01)
    # Paired: DDS = plain + 0.1 on every image gives a delta interval of exactly 0.1, whatever the spread.
    both = pd.concat([rows.assign(dds="none"), rows.assign(dds="carlini", topk_overlap=rows["topk_overlap"] + 0.1)])
    both = both.assign(method="m", radius_255=8.0)
    d, dlo, dhi, count = ci.delta(both, "topk_overlap", "m", "carlini", 8.0)
    assert count == n and d == pytest.approx(0.1) and dlo == pytest.approx(0.1) and dhi == pytest.approx(0.1)


def _blank_border(png: Path, width: int = 3) -> bool:
    """True when nothing is drawn in the image's outer `width` pixels: no title or label runs off its edge."""
    pixels = np.asarray(Image.open(png).convert("L"), dtype=np.int16)
    border = np.concatenate(
        [pixels[:width].ravel(), pixels[-width:].ravel(), pixels[:, :width].ravel(), pixels[:, -width:].ravel()]
    )
    return bool((border > 245).all())


def test_blank_border_check_catches_a_clipped_title(tmp_path):
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(3, 1))
    fig.suptitle("a title much too long for this small figure, cut at both sides", fontsize=14)
    fig.savefig(tmp_path / "clipped.png")  # no tight bbox: the title runs past the edges
    plt.close(fig)
    assert not _blank_border(tmp_path / "clipped.png")


def test_figures_are_whole_screen_sized_and_one_per_metric(small_run):
    out, _ = small_run
    figures = sorted((out / "figures").glob("*_vs_radius.png"))
    assert {p.name.removesuffix("_vs_radius.png") for p in figures} == {
        "pixel_accuracy",
        "mIoU",
        "mAP",
        "positive_auc_chefer",
        "negative_auc_chefer",
        "topk_overlap",
    }
    for png in [*figures, out / "figures" / "gallery.png"]:
        assert _blank_border(png), f"{png.name}: something is drawn up to the image's edge (clipped)"
        width, _ = Image.open(png).size
        assert 1000 <= width <= 1700, f"{png.name}: {width} px wide, not screen-sized"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package `chromium`; .ci/run installs it)")
def test_report_renders_in_headless_chromium(small_run, tmp_path):
    out, _ = small_run
    url = (out / "report.html").as_uri()
    profile = tmp_path / "profile"
    dom = subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={profile}",
            "--window-size=1280,900",
            "--virtual-time-budget=10000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    data = dict(re.findall(r'data-images-([\w-]+)="(\d+)"', dom))
    assert data, "the page's load script did not run"
    figures = len(list((out / "figures").glob("*.png")))
    assert int(data["total"]) == figures == 7 and int(data["loaded"]) == figures, "some figures did not decode"
    assert int(data["overflowing"]) == 0, "a figure runs past the page's right edge"
    assert int(data["min-width"]) >= 800, "figures are shown smaller than a screen's width"
    assert 'id="summary"' in dom and "Headline" in dom and "95% CI" in dom
    assert "Map gallery" in dom
    shot = tmp_path / "shot.png"
    subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1280,2400", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 10_000
    top = np.asarray(Image.open(shot).convert("L"))[:600]
    assert (top < 128).mean() > 0.002, "the top of the page (the summary) is blank"


def test_gallery_collects_the_runs_own_maps(tmp_path):
    """The maps the runner hands the gallery are the ones its rows were computed from: their top-k overlap
    equals the stored row's, for plain and DDS units alike."""
    import torch

    from harness.metrics.faithfulness import topk_overlap
    from harness.report.gallery import MapCollector
    from harness.runner.config import DDSSpec, ExperimentConfig
    from harness.runner.experiment import load_rows, run_experiment

    cfg = ExperimentConfig(
        methods=("raw_attention",),
        dds=(DDSSpec("carlini", sigma=32 / 255, samples=1),),
        radii_255=(0, 8),
        limit=2,
        batch_size=2,
        tasks=("segmentation",),
    )
    collector = MapCollector(["embedded-test-000001"], "raw_attention")
    run_experiment(cfg, tmp_path, progress=False, map_sink=collector)
    assert collector.complete(["carlini"]) and len(collector.maps) == 4  # 1 item x {none, carlini} x {0, 8}
    rows = load_rows(tmp_path, cfg).set_index(["item_id", "dds", "radius_255"])
    for dds in ("none", "carlini"):
        clean = collector.maps[("embedded-test-000001", dds, 0.0)][1]
        attacked = collector.maps[("embedded-test-000001", dds, 8.0)][1]
        overlap = topk_overlap(clean[None], attacked[None], cfg.topk).item()
        assert overlap == pytest.approx(rows.loc[("embedded-test-000001", dds, 8.0), "topk_overlap"], abs=1e-6)
    assert not torch.equal(
        collector.maps[("embedded-test-000001", "none", 8.0)][0],
        collector.maps[("embedded-test-000001", "none", 0.0)][0],
    )  # attacked input kept
    # Under a DDS map the gallery writes the smoothed prediction (the rows' majority vote), under a plain one
    # the classifier's: change the stored votes and the labels follow.
    from harness.data.registry import get_dataset
    from harness.report.gallery import from_collector

    items = [it for it in get_dataset("embedded", None) if it.item_id == "embedded-test-000001"]
    flat = load_rows(tmp_path, cfg)
    voted = flat.assign(smoothed_pred=[None if d == "none" else 7 for d in flat["dds"]])
    (image,) = from_collector(collector, items, ["carlini"], voted)
    assert image.cells[("carlini", "clean")].pred == 7 and image.cells[("carlini", "attacked")].pred == 7
    plain = flat[(flat["dds"] == "none") & (flat["radius_255"] == 8.0) & (flat["item_id"] == items[0].item_id)]
    assert image.cells[("none", "attacked")].pred == int(plain["pred"].iloc[0])


def test_verdict_summary_is_a_claim_by_method_grid():
    from harness.report.html import verdict_summary

    verdicts = pd.DataFrame(
        [
            {
                "world": "embedded",
                "group": g,
                "form": "relation (level)",
                "control": c,
                "method": m,
                "metric": "mIoU (percent)",
                "outcome": v,
            }
            for g, c, m, v in (
                ("fvit-1", "", "rollout", "held"),
                ("fvit-1", "", "lrp", "vacuous"),
                ("anchor", "", "lrp", "skipped"),
                ("fvit-1", "identity", "lrp", "inconclusive"),
            )
        ]
    )
    grid = verdict_summary(verdicts)
    assert list(grid.columns) == ["world", "claim", "form", "metric", "lrp", "rollout"]
    assert grid.iloc[0][["lrp", "rollout"]].tolist() == ["vacuous", "held"] and len(grid) == 1
    assert verdict_summary(pd.DataFrame([{"claim": "x", "outcome": "held"}])) is None


def test_report_states_each_methods_margin_over_the_best_baseline_map(tmp_path, monkeypatch):
    """With baseline maps among the rows, every table is followed by each method's margin over the best
    baseline map of its cell (positive = better, paired interval), and the headline says it per table."""
    from harness.cli import main

    monkeypatch.chdir(tmp_path)  # no reports/claims or reports/cost here
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--limit",
                "4",
                "--batch-size",
                "4",
                "--methods",
                "raw_attention",
                "--baselines",
                "--dds",
                "",
                "--radii",
                "0,8",
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
    seg = pd.read_csv(out / "segmentation.csv")
    assert set(seg["method"]) == {"raw_attention", "random_map", "centre_map", "constant_map"}
    page = (out / "report.html").read_text()
    for name in ("segmentation", "perturbation", "faithfulness"):
        assert f"id='{name}_vs_baselines'" in page and f"id='conventions-{name}_vs_baselines'" in page, name
        assert page.index(f"id='{name}'") < page.index(f"id='{name}_vs_baselines'")
    md = (out / "report.md").read_text()
    assert "Segmentation under attack vs the best baseline map at PGD 8/255, 1 method/DDS row:" in md
    assert "baseline maps (chance level): centre_map, constant_map, random_map" in md
    margins = _markdown_table(md, "## Segmentation under attack: margin over the best baseline map")
    assert list(margins["method"]) == ["raw_attention", "raw_attention"]  # baseline maps are not rows here
    for _, row in margins.iterrows():
        cell = seg[(seg["radius_255"] == float(row["radius_255"])) & (seg["dds"] == row["dds"])].set_index("method")
        text = row["mIoU over best baseline"]
        best = text.rsplit(" vs ", 1)[1]
        assert cell.loc[best, "mIoU"] == cell.drop("raw_attention")["mIoU"].max()  # mIoU: higher is better
        assert float(text.split()[0]) == pytest.approx(
            cell.loc["raw_attention", "mIoU"] - cell.loc[best, "mIoU"], rel=1e-2, abs=1e-2
        )
    faith = _markdown_table(md, "## Faithfulness under attack: margin over the best baseline map")
    assert faith["topk_overlap over best baseline"].str.endswith("vs centre_map").all()  # 1 by construction
    pert = _markdown_table(md, "## Perturbation tests: margin over the best baseline map")
    table = pd.read_csv(out / "perturbation.csv")
    row, cell = pert.iloc[0], table[(table["radius_255"] == 0) & (table["dds"] == "none")].set_index("method")
    best = row["positive_auc_chefer over best baseline"].rsplit(" vs ", 1)[1]
    assert cell.loc[best, "positive_auc_chefer"] == cell.drop("raw_attention")["positive_auc_chefer"].min()
    assert float(row["positive_auc_chefer over best baseline"].split()[0]) == pytest.approx(
        cell.loc[best, "positive_auc_chefer"] - cell.loc["raw_attention", "positive_auc_chefer"], rel=1e-2, abs=1e-2
    )
