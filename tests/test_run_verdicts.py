"""A run judges the claims its own settings measure, on its own rows, and says so at the end."""

from __future__ import annotations

import dataclasses

import pandas as pd

from harness.claims.registry import load_claims
from harness.report.run_verdicts import measured_claims, read_run_verdicts, run_summary
from harness.runner.config import ExperimentConfig


def test_a_run_writes_the_verdicts_of_the_claims_it_measures(small_run):
    out, printed = small_run
    table = read_run_verdicts(out)
    assert table is not None
    # 4 images, rollout and raw_attention with carlini and the oracle (the config's positive control) at 0 and
    # 8/255: fvit-1 (level and drop, 3 metrics), fvit-2 (2 AUCs, level and drop) and re-3 (top-k) for each
    # method, with carlini and as oracle controls; no other control, no adaptive, no cost claim.
    assert set(table["method"]) == {"rollout", "raw_attention"}
    assert set(table["group"]) == {"fvit-1", "fvit-2", "re-3"} and set(table["control"]) == {"", "oracle"}
    assert len(table) == 2 * 2 * 11 and (table["n_images"] == 4).all() and (table["test"] == "judged").all()
    assert "oracle holds" in (out / "verdicts.md").read_text()
    assert set(table["outcome"]) <= {"held", "contradicted", "inconclusive", "vacuous"}
    assert table["delta_ci95"].notna().all()
    md = (out / "verdicts.md").read_text()
    assert "judged on its own 4 images" in md and "paired-bootstrap" in md and "32.0/255" in md
    page = (out / "report.html").read_text()
    glance = page[page.index("id='verdict-summary'") :]
    assert "judged on its own 4 images" in glance and "table-verdict-summary" in glance
    assert printed.strip().splitlines()[-1].startswith("done in ")
    assert any(line.strip().startswith("re-3") and "(of 2 methods)" in line for line in printed.splitlines())


def test_verdicts_are_those_of_the_claims_suite_on_the_same_rows(small_run):
    """The run's verdict of a claim is the suite's evaluation on the same rows (one code path)."""
    from harness.claims.evaluate import evaluate
    from harness.runner.aggregate import all_tables
    from harness.runner.config import load_config
    from harness.runner.experiment import load_rows

    out, _ = small_run
    cfg = load_config(out / "config.json")
    rows = load_rows(out, cfg)
    claim = next(c for c in load_claims() if c.id == "embedded-re-3-rollout-topk_overlap")
    verdict = evaluate(claim, {**all_tables(rows), "rows": rows})
    mine = read_run_verdicts(out).set_index("claim").loc[claim.id]
    assert mine["outcome"] == verdict.outcome and abs(mine["delta"] - verdict.delta) < 1e-9


def _rows(methods, dds, radii):
    return pd.DataFrame(
        [{"item_id": "a", "method": m, "dds": d, "radius_255": float(r)} for m in methods for d in dds for r in radii]
    )


def test_only_claims_whose_setting_the_run_has_are_measured():
    cfg = ExperimentConfig(methods=("rollout",))
    tables = {"segmentation": None, "perturbation": None, "faithfulness": None}
    found = measured_claims(cfg, _rows(["rollout"], ["none", "carlini"], [0, 8]), tables)
    assert found and {c.method for c in found} == {"rollout"} and {c.attack for c in found} == {"pgd_linf_10step_pred"}
    # Without radius 8/255, without DDS, or with another attack, no claim is measured.
    assert not measured_claims(cfg, _rows(["rollout"], ["none", "carlini"], [0, 4]), tables)
    assert not measured_claims(cfg, _rows(["rollout"], ["none"], [0, 8]), tables)
    assert not measured_claims(
        dataclasses.replace(cfg, attack_steps=20), _rows(["rollout"], ["none", "carlini"], [0, 8]), tables
    )
    # Only the metrics of the tables the run wrote.
    seg_only = measured_claims(cfg, _rows(["rollout"], ["none", "carlini"], [0, 8]), {"segmentation": None})
    assert {c.metric for c in seg_only} == {"pixel_accuracy", "mIoU", "mAP"}
    # The adaptive attack measures the adaptive claims (top-k overlap), the identity DDS its control.
    adaptive = dataclasses.replace(cfg, attack="adaptive")
    assert {c.claim for c in measured_claims(adaptive, _rows(["rollout"], ["none", "carlini"], [0, 8]), tables)} == {
        "adaptive"
    }
    controls = measured_claims(cfg, _rows(["rollout"], ["none", "identity"], [0, 8]), tables)
    assert controls and {c.control for c in controls} == {"identity"}


def test_a_run_that_measures_no_claim_says_why(tmp_path):
    cfg = ExperimentConfig(radii_255=(0, 4))
    (line,) = run_summary(cfg, tmp_path)
    assert "measures none of the claims" in line and "8/255" in line and "0, 4/255" in line


def test_plugin_methods_get_the_claims_every_builtin_method_has():
    """A method outside claims/claims.yaml (captum:..., or one the user registered) is judged on the same claims
    as a built-in one: same groups, metrics, relations, DDS and radius; baseline maps keep only their controls."""
    cfg = ExperimentConfig(methods=("rollout",))
    tables = {"segmentation": None, "perturbation": None, "faithfulness": None}
    plugin = "captum:Saliency"
    rows = _rows(["rollout", plugin, "random_map"], ["none", "carlini", "identity"], [0, 8])
    found = measured_claims(cfg, rows, tables)

    def shape(c):
        return (c.claim, c.table, c.metric, c.relation, c.dds, c.radius_255, c.control, c.expect)

    builtin = sorted(shape(c) for c in found if c.method == "rollout")
    mine = [c for c in found if c.method == plugin]
    assert builtin and sorted(shape(c) for c in mine) == builtin
    assert all(plugin in c.id and plugin in c.statement for c in mine) and len({c.id for c in found}) == len(found)
    assert {c.control for c in found if c.method == "random_map"} == {"baseline_maps"}
    # Without the plug-in's rows no claim is stated for it; an explicit claim list is taken as given.
    assert not [
        c for c in measured_claims(cfg, _rows(["rollout"], ["none", "carlini"], [0, 8]), tables) if c.method == plugin
    ]
    assert not [c for c in measured_claims(cfg, rows, tables, claims=load_claims()) if c.method == plugin]
