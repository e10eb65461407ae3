"""The claims registry: in sync with its source, complete, and judged correctly."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from harness.claims.build import METHODS, build_claims
from harness.claims.evaluate import evaluate, judge_value
from harness.claims.paper import missing_inputs
from harness.claims.registry import CLAIMS_FILE, Claim, load_claims


def test_committed_yaml_equals_the_build():
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml parses the same documents, faster
    built = yaml.safe_dump(build_claims(), sort_keys=False)
    assert yaml.load(CLAIMS_FILE.read_text(), Loader=loader) == yaml.load(built, Loader=loader)


def test_every_protocol_claim_covers_every_method_in_both_worlds():
    claims = load_claims()
    for world in ("paper", "embedded"):
        for tag in ("fvit-1", "fvit-2", "re-3", "re-4"):
            covered = {c.method for c in claims if c.world == world and c.claim == tag and not c.control}
            assert covered == set(METHODS), (world, tag)
    anchors = [c for c in claims if c.claim == "anchor"]
    assert {c.method for c in anchors} >= {"transformer_attribution", "rollout", "raw_attention", "lrp"}


def _claim(**kw) -> Claim:
    base = dict(
        id="x",
        claim="fvit-1",
        source="s",
        table="t",
        statement="s",
        world="embedded",
        model="m",
        dataset="d",
        method="rollout",
        dds="carlini",
        attack="a",
        radius_255=8.0,
        metric="mIoU",
        convention="percent",
        kind="relation",
        reported=None,
        relation="dds >= none",
        tolerance=0.0,
        provenance="p",
        confidence="c",
    )
    return Claim(**{**base, **kw})


def test_values_are_judged_by_their_tolerance():
    value = _claim(kind="value", reported=79.7, relation=None, tolerance=1.0)
    assert judge_value(value, 80.6).held and judge_value(value, 80.8).outcome == "contradicted"
    assert judge_value(value, float("nan")).outcome == "inconclusive"


def test_evaluate_reads_the_right_rows():
    seg = pd.DataFrame(
        [
            {"method": "rollout", "dds": d, "radius_255": r, "mIoU": v}
            for d, r, v in (("none", 0.0, 60.0), ("none", 8.0, 40.0), ("carlini", 8.0, 45.0), ("carlini", 0.0, 1.0))
        ]
    )
    value = _claim(kind="value", reported=44.0, relation=None, tolerance=1.0)
    verdict = evaluate(value, {"segmentation": seg})
    assert (verdict.measured, verdict.delta, verdict.outcome) == (45.0, 1.0, "held")
    with pytest.raises(LookupError, match="per-image rows"):
        evaluate(_claim(), {"segmentation": seg})


def test_bad_claims_are_refused():
    with pytest.raises(ValueError, match="relation"):
        _claim(relation="better")
    with pytest.raises(ValueError, match="reported"):
        _claim(kind="value", relation=None)


def test_paper_claims_name_what_is_missing(monkeypatch):
    for var in ("FVIT_VIT_B16_WEIGHTS", "FVIT_IMAGENET_SEG", "FVIT_ADM_DIR"):
        monkeypatch.delenv(var, raising=False)
    claim = _claim(world="paper", model="vit_base_patch16_224", dataset="imagenet-seg", dds="fvit")
    text = " ".join(missing_inputs(claim))
    assert "FVIT_VIT_B16_WEIGHTS" in text and "FVIT_IMAGENET_SEG" in text and "FVIT_ADM_DIR" in text


def test_reported_dds_effects_become_effect_claims():
    effects = {c.id: c for c in load_claims() if c.kind == "effect"}
    seg = effects["re2025-seg_plot-transformer_attribution-re-minus-none-r16-pixel_accuracy"]
    assert seg.reported == pytest.approx(77.26 - 75.5) and seg.n_reported == 4276 and seg.dds == "re"
    dev = effects["re2025-dev_run_760-transformer_attribution-re-minus-none-r0-positive_auc"]
    assert dev.reported == pytest.approx(0.1556 - 0.1349) and dev.n_reported == 760
    assert all(c.world == "paper" and "tolerance derived" in c.note for c in effects.values())
