"""Claims suite plumbing: the experiments claims are measured on, and the verdict table.

Every `pytest claims/` run writes reports/claims/verdicts.md and .csv (claim, measured, delta and its
interval, the attack's effect on the plain method, outcome, family-wise view, test result and why),
whether it passes or fails; its header counts each outcome and names the run (commit, config hash).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from harness.claims.evaluate import Verdict
from harness.claims.registry import Claim

VERDICT_DIR = Path(__file__).resolve().parents[1] / "reports" / "claims"
# The embedded-world analogue experiment (one run shared by every embedded claim).
# Sized for the default suite on 2 CPU cores (docs/PROTOCOL.md section 1 fixes the settings, not the count):
# 48 images, one chunk.
EMBEDDED_IMAGES = 48
EMBEDDED_BATCH = 48
EMBEDDED_SIGMA = 32 / 255  # carlini DDS noise std, [0,1] pixel units
EMBEDDED_SAMPLES = 8
# PGD radii (1/255 pixel units) of the analogue experiment: every robustness claim is judged at each attacked
# one (8/255 is the claims' headline radius; docs/PROTOCOL.md section 1: the radius axis).
EMBEDDED_RADII = (0, 8, 32)
COST_IMAGES = 4  # images per cost cell of the embedded cost claims
# The adaptive attack through DDS (EOT 4, 10 steps) costs ~1.3 s per image and attacked form on 2 idle cores; the
# 8 methods need 4 attacks (the surrogate methods reuse the attack of the form they stand in for). Its claims
# run with -m slow (the nightly's claims step): the experiment alone is over a minute.
ADAPTIVE_IMAGES = 12
# CPU float reductions depend on the thread count: the analogue experiment always runs on 2 threads
# (CI's cores), so its numbers, and the expectations measured from them, are the same on any machine.
EMBEDDED_THREADS = 2

_VERDICTS: dict[str, dict] = {}
_RADIUS_ROWS: dict[str, list[dict]] = {}  # claim id -> its radius curve (robustness relations)
# The run each verdict came from (config hash, images, threads), by experiment name.
_RUNS: dict[str, str] = {}


def _session_identity() -> dict[str, str]:
    """The commit and date every verdict of this pytest session is stamped with."""
    import datetime
    import subprocess

    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                cwd=Path(__file__).parent,
                timeout=10,
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {"commit": commit, "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")}


_SESSION = _session_identity()
SMOKE_NOTES: list[str] = []  # set by paper_tables when a smoke run's overrides are in the environment


@contextlib.contextmanager
def _threads(count: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


_EVALUATED: dict[tuple[str, str, int], Verdict] = {}


def verdict_of(claim: Claim, tables: dict) -> Verdict:
    """`evaluate(claim, tables)`, once per claim, DDS variant and experiment in a session (the claims' tests, their
    control families and the world's power test share it)."""
    from harness.claims.evaluate import evaluate

    key = (claim.id, claim.dds, id(tables))
    if key not in _EVALUATED:
        _EVALUATED[key] = evaluate(claim, tables)
    return _EVALUATED[key]


def record(verdict: Verdict, test: str | None = None, reason: str = "", run: dict | None = None) -> None:
    """Add `verdict` to the verdict table; test: what its test did (passed / failed / xfailed / skipped);
    run: the experiment it was measured on (config_hash, n_images), named in its row."""
    from harness.claims.verdicts import radius_rows, verdict_row

    _VERDICTS[verdict.claim.id] = {**verdict_row(verdict, test, reason, run), **_SESSION}
    if verdict.by_radius:
        _RADIUS_ROWS[verdict.claim.id] = radius_rows(verdict, run)


def record_skip(claim: Claim, reason: str) -> None:
    record(Verdict(claim, "skipped", reason=reason), "skipped")


def _provenance() -> list[str]:
    return [f"Run: commit {_SESSION['commit']}, {_SESSION['date']}."] + [
        f"Experiment {name}: {text}." for name, text in sorted(_RUNS.items())
    ]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _VERDICTS:
        return
    from harness.claims.verdicts import CONVENTIONS, outcome_counts, verdict_table
    from harness.report.tables import write_table

    table = verdict_table(list(_VERDICTS.values()))
    header, control_lines = outcome_counts(table)
    write_table(
        table,
        VERDICT_DIR,
        "verdicts",
        "Claim verdicts",
        CONVENTIONS,
        context=[
            f"Claims (controls excluded): {header}.",
            *control_lines,
            *_provenance(),
            f"pytest exit status: {int(exitstatus)}",
            *SMOKE_NOTES,
        ],
    )
    if _RADIUS_ROWS:
        from harness.claims.verdicts import RADIUS_CONVENTIONS

        curves = pd.DataFrame([r for rows in _RADIUS_ROWS.values() for r in rows])
        write_table(
            curves.sort_values(["control", "claim", "radius_255"], kind="stable"),
            VERDICT_DIR,
            "verdicts_by_radius",
            "Claim verdicts along the radius axis",
            RADIUS_CONVENTIONS,
            context=[*_provenance()],
        )
        from harness.report.radius_curves import radius_curve_figure

        radius_curve_figure(curves, VERDICT_DIR / "figures" / "radius_curves.png", dds="carlini")


def _analogue_tables(tmp_path_factory, cache_env: str, **settings) -> dict[str, pd.DataFrame]:
    """Run (or resume, under $`cache_env`) an embedded analogue experiment with carlini DDS at EMBEDDED_RADII
    (PGD; 1/255 units) on EMBEDDED_THREADS threads; its tables plus the per-image rows ("rows", for the intervals)."""
    from harness.runner.aggregate import all_tables
    from harness.runner.config import ExperimentConfig
    from harness.runner.experiment import load_rows, run_experiment

    settings = {"dds": (_carlini(),), "radii_255": EMBEDDED_RADII, **settings}
    cfg = ExperimentConfig(explain_classes=("pred",), batch_size=EMBEDDED_BATCH, **settings)
    # The cache variable keeps (and resumes) the run between sessions; by default it is fresh.
    out = Path(os.environ.get(cache_env) or tmp_path_factory.mktemp(cfg.name))
    with _threads(EMBEDDED_THREADS):
        run_experiment(cfg, out, progress=False)
    rows = load_rows(out, cfg)
    n = rows["item_id"].nunique()
    _RUNS[cfg.name] = (
        f"config hash {cfg.config_hash()}, {n} images, {EMBEDDED_THREADS} threads, "
        f"DDS {', '.join(d.variant for d in cfg.dds)}"
    )
    return {
        **all_tables(rows),
        "rows": rows,
        "run": {"name": cfg.name, "config_hash": cfg.config_hash(), "n_images": n},
    }


def _carlini():
    from harness.runner.config import DDSSpec

    return DDSSpec("carlini", sigma=EMBEDDED_SIGMA, samples=EMBEDDED_SAMPLES)


@pytest.fixture(scope="session")
def embedded_tables(tmp_path_factory):
    """The embedded-world analogue experiment, PGD at EMBEDDED_RADII: every method and the baseline maps
    (random / centre / constant), plain, with carlini DDS, with the identity control and with the oracle (the
    positive control): the claims and their controls, on the same images, seeds, attacks and purified samples
    (the baseline maps share the methods' attack and DDS purification instead of redoing them)."""
    from harness.claims.build import BASELINE_MAPS, METHODS
    from harness.runner.config import DDSSpec

    return _analogue_tables(
        tmp_path_factory,
        "FVIT_CLAIMS_CACHE",
        name="claims-embedded",
        dds=(_carlini(), DDSSpec("identity"), DDSSpec("oracle")),
        methods=(*METHODS, *BASELINE_MAPS),
        tasks=("segmentation", "perturbation"),
        limit=EMBEDDED_IMAGES,
    )


@pytest.fixture(scope="session")
def embedded_noise_only_tables(tmp_path_factory):
    """The noise_only control (carlini's sigma and m, no denoiser) in the analogue experiment's setting: a
    finding, not a negative control, so its experiment runs with `-m slow` (nightly: `-m "not gpu"`)."""
    from harness.claims.build import METHODS
    from harness.runner.config import DDSSpec

    dds = (DDSSpec("noise_only", sigma=EMBEDDED_SIGMA, samples=EMBEDDED_SAMPLES),)
    return _analogue_tables(
        tmp_path_factory,
        "FVIT_CLAIMS_CACHE_NOISE_ONLY",
        name="claims-embedded-noise-only",
        dds=dds,
        methods=METHODS,
        tasks=("segmentation", "perturbation"),
        limit=EMBEDDED_IMAGES,
    )


@pytest.fixture(scope="session")
def embedded_adaptive_tables(tmp_path_factory):
    """The embedded analogue under the adaptive attack on each map (top-k loss, 4 noise draws per step) at 8/255,
    plain, through carlini DDS, through the identity control (claims/test_controls.py: a no-op DDS must fail) and
    with the oracle (a positive control: it must hold where the attack bites).
    Used by -m slow tests only."""
    from harness.claims.build import ADAPTIVE_METHODS
    from harness.runner.config import DDSSpec

    return _analogue_tables(
        tmp_path_factory,
        "FVIT_CLAIMS_CACHE_ADAPTIVE",
        name="claims-embedded-adaptive",
        dds=(_carlini(), DDSSpec("identity"), DDSSpec("oracle")),
        methods=ADAPTIVE_METHODS,
        radii_255=(0, 8),
        tasks=("segmentation",),
        attack="adaptive",
        adaptive_loss="topk",
        eot_samples=4,
        limit=ADAPTIVE_IMAGES,
    )


def _selected_paper_groups(session: pytest.Session) -> set[tuple[str, str, str]]:
    """The paper experiments the selected, runnable claims of this session are measured in."""
    from harness.claims.build import COST_DATASET
    from harness.claims.paper import group_of, missing_inputs

    groups = set()
    for item in session.items:
        claim = getattr(item, "callspec", None) and item.callspec.params.get("claim")
        paper = isinstance(claim, Claim) and claim.world == "paper" and claim.dataset != COST_DATASET
        if paper and not missing_inputs(claim):
            groups.add(group_of(claim))
    return groups


@pytest.fixture(scope="session")
def paper_tables(request):
    """Paper-scale tables per dataset, computed (and resumed) under $FVIT_CLAIMS_OUT on first use.

    Each (model, dataset, DDS variant) group of claims is its own experiment (`harness.claims.paper.
    group_of`): only the groups of this session's selected, runnable claims run, so plain claims need no
    denoiser. $FVIT_CLAIMS_LIMIT / $FVIT_CLAIMS_DDS_SIGMA make a smoke run, stated in the verdict table.
    """
    import warnings

    import torch

    from harness.claims.paper import paper_config, smoke_note, smoke_settings
    from harness.claims.registry import load_claims
    from harness.runner.aggregate import all_tables
    from harness.runner.experiment import load_rows, run_experiment

    claims = [c for c in load_claims() if c.world == "paper"]
    groups = _selected_paper_groups(request.session)
    smoke = smoke_settings()
    if smoke_note(smoke):
        SMOKE_NOTES.append(smoke_note(smoke))
    cache: dict[str, dict[str, pd.DataFrame]] = {}
    root = Path(os.environ.get("FVIT_CLAIMS_OUT", VERDICT_DIR / "paper-runs"))

    def get(dataset: str) -> dict[str, pd.DataFrame]:
        if dataset not in cache:
            if not torch.cuda.is_available():
                warnings.warn(
                    "paper-scale claims are running on the CPU (no CUDA device): expect hours at full "
                    "size; set FVIT_CLAIMS_LIMIT for a smoke run",
                    stacklevel=2,
                )
            frames = []
            for group in sorted(g for g in groups if g[1] == dataset):
                cfg = paper_config(claims, group, **smoke)
                out = root / cfg.name
                run_experiment(cfg, out)
                frames.append(load_rows(out, cfg))
            # The plain rows of a (method, radius) can come from several groups: identical (same seeds), keep one.
            rows = pd.concat(frames, ignore_index=True).drop_duplicates(
                subset=["item_id", "method", "dds", "radius_255"], ignore_index=True
            )
            cache[dataset] = {**all_tables(rows), "rows": rows}
        return cache[dataset]

    return get


@pytest.fixture(scope="session")
def cost_tables():
    """Per-image cost tables for the cost claims (re-4), by world, measured once and written to reports/claims/.

    embedded: the shipped models on CPU, every method plain and with the embedded claims' carlini DDS;
    paper: ViT-B/16 + ADM-256 with random weights on CUDA, every method plain and with Re's DDS.
    """
    from harness.cost.timing import (
        CostSettings,
        cost_table,
        embedded_images,
        embedded_models,
        paper_architecture_models,
        write_cost_report,
    )

    cache: dict[str, dict[str, pd.DataFrame]] = {}

    def get(world: str) -> dict[str, pd.DataFrame]:
        if world not in cache:
            if world == "embedded":
                model, denoiser, origin = embedded_models()
                images = embedded_images(COST_IMAGES)
                # The identity control at its own m = 1: a DDS that adds no work must fail the work claim.
                settings = CostSettings(
                    images=COST_IMAGES,
                    batch_size=COST_IMAGES,
                    sigma_by_variant=(("carlini", EMBEDDED_SIGMA),),
                    samples_by_variant=(("carlini", EMBEDDED_SAMPLES),),
                )
                table = cost_table(model, denoiser, images, variants=("carlini", "identity"), settings=settings)
            else:
                import torch

                model, denoiser = paper_architecture_models("cuda")
                origin = "paper architectures, random weights"
                images = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0)).cuda()
                table = cost_table(
                    model, denoiser, images, variants=("re",), settings=CostSettings(images=2, batch_size=1)
                )
            write_cost_report(
                table,
                VERDICT_DIR / f"cost-{world}",
                (f"Measured for the {world} cost claims (re-4); models: {origin}.",),
            )
            cache[world] = {"cost": table}
        return cache[world]

    return get
