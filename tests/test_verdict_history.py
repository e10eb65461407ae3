"""Verdict history in asv (benchmarks/bench_verdicts.py): the tracked values are the verdict table's, and
`asv publish` over two commits shows each claim's effect as a series beside the cost benchmarks."""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def suite(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module("benchmarks.bench_verdicts")


def write_table(path: Path, seed: int, suite, extra_column: bool = True) -> pd.DataFrame:
    """A verdict table of every tracked claim, written by the claims suite's own functions (verdict_row and
    verdict_table, as claims/conftest.py does), with seeded effects, intervals and outcomes; plus a control
    row, which is not tracked, and (extra_column) a column the benchmarks do not know."""
    from harness.claims.evaluate import Verdict
    from harness.claims.registry import load_claims
    from harness.claims.verdicts import verdict_row, verdict_table

    rng = np.random.default_rng(seed)
    by_id = {c.id: c for c in load_claims()}
    outcomes = ["held", "inconclusive", "vacuous", "contradicted"]
    rows = []
    for claim_id in suite.CLAIMS.values():
        delta = float(rng.normal(0, 3))
        half = float(rng.uniform(0.1, 2))
        verdict = Verdict(
            by_id[claim_id], str(rng.choice(outcomes)), 50.0, 50.0 - delta, delta, (delta - half, delta + half), 0.2
        )
        rows.append(verdict_row(verdict, "passed", run={"name": "claims-embedded", "n_images": 32}))
    control = next(c for c in load_claims() if c.world == "embedded" and c.control == "identity")
    rows.append(verdict_row(Verdict(control, "held", delta=99.0, interval=(98.0, 100.0)), "failed"))
    table = verdict_table(rows)
    if extra_column:
        table["radius_breakdown"] = "r8: +1.0"  # a column added later (the per-radius breakdown): ignored
    table.to_csv(path, index=False)
    return table


def test_the_grids_are_the_embedded_relation_claims(suite):
    from harness.claims.registry import load_claims

    expected = {c.id for c in load_claims() if c.world == "embedded" and c.kind == "relation" and not c.control} - {
        c.id for c in load_claims() if c.relation == "dds work > none work"
    }
    assert set(suite.CLAIMS.values()) == expected
    assert "fvit-1 level pixel_accuracy" in suite.GROUPS and "re-3 level topk_overlap" in suite.GROUPS
    assert suite.ClaimEffect.params == (suite.GROUPS, suite.METHODS)
    units = {n: getattr(suite.ClaimEffect, n).unit for n in ("track_delta", "track_ci95_low", "track_ci95_high")}
    units |= {n: getattr(suite.ClaimOutcomes, f"track_{n}").unit for n in suite.OUTCOMES}
    assert set(units.values()) == {suite.EFFECT_UNIT, "claims"}


def test_tracked_values_equal_the_verdict_table(suite, tmp_path, monkeypatch):
    table = write_table(tmp_path / "verdicts.csv", 0, suite)
    monkeypatch.setenv(suite.VERDICTS_ENV, str(tmp_path / "verdicts.csv"))
    effects, outcomes = suite.ClaimEffect(), suite.ClaimOutcomes()
    cache = effects.setup_cache()
    rows = table.set_index("claim")
    for (group, method), claim in suite.CLAIMS.items():
        effects.setup(cache, group, method)
        row = rows.loc[claim]
        low, high = (float(v) for v in row["delta_ci95"].strip("[]").split(","))
        assert effects.track_delta(cache, group, method) == row["delta"]
        assert (effects.track_ci95_low(cache, group, method), effects.track_ci95_high(cache, group, method)) == (
            low,
            high,
        )
    relation = table[(table["control"] == "") & (table["world"] == "embedded")].copy()
    relation["key"] = [suite.group_key(next(c for c in _claims() if c.id == i)) for i in relation["claim"]]
    counts = relation.groupby(["key", "outcome"]).size()
    cache = outcomes.setup_cache()
    for group in suite.GROUPS:
        outcomes.setup(cache, group)
        for outcome in suite.OUTCOMES:
            assert getattr(outcomes, f"track_{outcome}")(cache, group) == counts.get((group, outcome), 0)
        assert sum(getattr(outcomes, f"track_{o}")(cache, group) for o in suite.OUTCOMES) == len(suite.METHODS)


def _claims():
    from harness.claims.registry import load_claims

    return load_claims()


def test_a_missing_or_stale_table_is_skipped_not_recorded(suite, tmp_path, monkeypatch):
    monkeypatch.setenv(suite.VERDICTS_ENV, str(tmp_path / "none.csv"))
    bench = suite.ClaimEffect()
    cache = bench.setup_cache()
    with pytest.raises(NotImplementedError, match="no verdict table"):  # asv: skipped
        bench.setup(cache, suite.GROUPS[0], suite.METHODS[0])
    table = write_table(tmp_path / "verdicts.csv", 1, suite)
    table["commit"] = "0123abc"
    table.to_csv(tmp_path / "verdicts.csv", index=False)
    with pytest.raises(NotImplementedError, match="0123abc"):
        suite.load_verdicts(tmp_path / "verdicts.csv", head="fedcba9876")
    assert suite.load_verdicts(tmp_path / "verdicts.csv", head="0123abc4567")  # the table of the recorded commit
    assert suite.parse_interval("[-1.5, +2]") == (-1.5, 2.0) and all(map(math.isnan, suite.parse_interval("")))


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.mark.slow
def test_asv_publish_shows_each_claims_effect_across_two_commits(suite, tmp_path):
    """Two commits, each with its own verdict table, through `asv run` and `asv publish` (the nightly's steps,
    on a throwaway repository): the published graph of each claim's effect has both commits' values."""
    from asv.util import load_json

    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    bench_dir = tmp_path / "benchmarks"
    bench_dir.mkdir()
    # The suite as it is, on a smaller grid (asv runs each parameter combination in a process of its own).
    small = "\nGROUPS = GROUPS[:3]\nMETHODS = ['rollout', 'lrp']\nClaimEffect.params = (GROUPS, METHODS)\n"
    small += "ClaimOutcomes.params = (GROUPS,)\n"
    (bench_dir / "bench_verdicts.py").write_text((ROOT / "benchmarks" / "bench_verdicts.py").read_text() + small)
    (bench_dir / "__init__.py").write_text("")
    conf = {
        "version": 1,
        "project": "fvit-bench",
        "repo": str(repo),
        "branches": ["main"],
        "environment_type": "existing",
        "pythons": [sys.executable],
        "benchmark_dir": str(bench_dir),
        "results_dir": str(tmp_path / "results"),
        "html_dir": str(tmp_path / "html"),
        "env_dir": str(tmp_path / "env"),
        "build_command": [],
        "install_command": [],
        "uninstall_command": [],
    }
    project = load_json(str(ROOT / "asv.conf.json"), js_comments=True)
    conf |= {k: project[k] for k in ("launch_method", "default_benchmark_timeout")}  # as the nightly runs it
    (tmp_path / "asv.conf.json").write_text(json.dumps(conf))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    asv = [sys.executable, "-m", "asv", "--config", str(tmp_path / "asv.conf.json")]

    def run(*args: str, **extra: str) -> None:
        out = subprocess.run([*asv, *args], cwd=tmp_path, env={**env, **extra}, capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr

    run("machine", "--yes", "--machine", "nightly-test")
    tables, commits = {}, []
    for seed in (0, 1):
        (repo / "VERSION").write_text(str(seed))
        _git(repo, "add", "VERSION")
        _git(repo, "commit", "-q", "-m", f"commit {seed}")
        commits.append(_git(repo, "rev-parse", "HEAD"))
        tables[seed] = write_table(tmp_path / f"verdicts-{seed}.csv", seed, suite)
        run(
            "run",
            "--python=same",
            "--machine",
            "nightly-test",
            "--set-commit-hash",
            commits[-1],
            "--bench",
            "bench_verdicts",
            **{suite.VERDICTS_ENV: str(tmp_path / f"verdicts-{seed}.csv")},
        )
    run("publish")
    graphs = [
        p
        for p in (tmp_path / "html" / "graphs").rglob("bench_verdicts.ClaimEffect.track_delta.json")
        if "summary" not in p.parts  # asv's cross-parameter summary; the per-machine graph has the grid
    ]
    assert len(graphs) == 1, sorted(str(p) for p in (tmp_path / "html").rglob("*.json"))[:20]
    series = json.loads(graphs[0].read_text())
    index = json.loads((tmp_path / "html" / "index.json").read_text())
    revisions = {int(r): h for r, h in index["revision_to_hash"].items()}
    # One point per commit: [revision, the values over the parameter grid], in commit order.
    assert [revisions[r] for r, _ in series] == commits
    groups, methods = suite.GROUPS[:3], ["rollout", "lrp"]
    for (_, values), seed in zip(series, (0, 1), strict=True):
        deltas = tables[seed].set_index("claim")["delta"]
        expected = [deltas[suite.CLAIMS[(g, m)]] for g in groups for m in methods]  # asv's order: the grid's product
        assert values == pytest.approx(expected, rel=1e-12)
    assert "bench_verdicts.ClaimOutcomes.track_held" in index["benchmarks"]
