"""Checks beyond the papers as claims on the embedded world (harness.claims.beyond):

- the certified top-k region (Cohen et al. 2019's Gaussian L2 certificate applied to top-k membership):
  L2 attacks within each image's certified radius must not break what is certified;
- model randomisation (Adebayo et al. 2018), cascading and independent: a map that survives randomising
  the weights fails the sanity check.

Verdicts: held / contradicted / inconclusive / vacuous, recorded in the verdict table.
"""

from __future__ import annotations

import pytest
import torch

from claims.conftest import EMBEDDED_THREADS, _threads, record
from harness.certify import BOUND_NAME, SmoothingSetup
from harness.claims.beyond import (
    RANDOMISATION_THRESHOLD,
    beyond_claim,
    certified_region_check,
    randomisation_table,
    randomisation_verdict,
)
from harness.claims.evaluate import Verdict

CERT_IMAGES, CERT_SIGMA = 2, 8 / 255  # noise_only smoothing: pixel std, [0, 1] units
RANDOMISATION_IMAGES = 4
# Methods whose three explanation passes per stage cost > ~5 s on 4 images (2 CPU threads) run as slow.
SLOW_RANDOMISATION = ("partial_lrp", "transformer_attribution", "generic_attention")
# Measured on the embedded world (4 images, seed 0): maps that survive one block's randomisation. Transformer
# Attribution independent survived it with the ViT before recipe stage 6; since, it is inconclusive (the
# interval of mean rho - 0.5 contains 0), so it is no longer listed.
KNOWN_SURVIVES: dict[tuple[str, str], str] = {
    ("rollout", "independent"): "attention rollout multiplies every block's attention with the identity "
    "added, so one randomised block leaves the product nearly unchanged",
    ("generic_attention", "independent"): "R accumulates over blocks from the identity: one block is diluted",
}


@pytest.fixture(scope="module")
def embedded():
    from harness.data.registry import get_dataset
    from harness.models.mini import load_mini_vit

    ds = get_dataset("embedded", None)
    return load_mini_vit(), ds


def _certified_params():
    from harness.explainers.builtin import BUILTIN_METHODS

    return [
        pytest.param(m, marks=[pytest.mark.claim] + ([] if m == "rollout" else [pytest.mark.slow]))
        for m in BUILTIN_METHODS
    ]


@pytest.mark.parametrize("method", _certified_params())
def test_certified_topk_region(method, embedded):
    from claims.conftest import VERDICT_DIR
    from harness.report.tables import write_table

    model, ds = embedded
    images = torch.stack([ds[i].image for i in range(CERT_IMAGES)])
    setup = SmoothingSetup(method, "noise_only", CERT_SIGMA)
    with _threads(EMBEDDED_THREADS):
        check = certified_region_check(model, images, setup, n0=8, n=64, alpha=0.05, overlap=0.5)
    print(check.table.to_string())
    write_table(
        check.table,
        VERDICT_DIR / "beyond",
        f"certified-{method}",
        f"Certified top-k region: {method}",
        (
            f"{BOUND_NAME}; noise_only smoothing, sigma {CERT_SIGMA:.4f} ([0, 1] pixel std), n0 = 8, n = 64, "
            "alpha 0.05.",
            "Radii and attack_l2: L2 norms in [0, 1] pixel units. k: top-k entries of the 64x64 map (10%).",
            "certified_overlap_at_attack: lower bound of the smoothed top-k overlap at the attack radius; "
            "empirical_overlap: Monte Carlo majority sets at x and x_adv (fractions of k).",
            "point/significant_breaks: certified entries (and the prediction) lost at x_adv.",
        ),
        floatfmt=".4g",
    )
    claim = beyond_claim(
        f"embedded-beyond-certified-topk-{method}",
        "L2 attacks within the certified top-k radius (overlap 0.5 and the prediction) break nothing certified",
        method,
        "noise_only",
        "l2-pgd-eot",
        "certified_break_rate",
        "fraction",
        0.0,
        f"{BOUND_NAME} (Cohen, Rosenfeld, Kolter, ICML 2019, Theorem 1 and CERTIFY); FViT's own Algorithm 2 "
        "bound could not be read",
    )
    verdict = check.verdict(claim)
    if check.status == "vacuous":
        record(verdict, "skipped")
        pytest.skip(check.reason)
    record(verdict, "failed" if check.status == "contradicted" else "passed")
    assert check.status != "contradicted", check.reason


def _randomisation_params():
    from harness.explainers.builtin import BUILTIN_METHODS

    return [
        pytest.param(m, marks=[pytest.mark.claim] + ([pytest.mark.slow] if m in SLOW_RANDOMISATION else []))
        for m in BUILTIN_METHODS
    ]


@pytest.fixture(scope="module")
def randomisation_tables(embedded):
    model, ds = embedded
    images = torch.stack([ds[i].image for i in range(RANDOMISATION_IMAGES)])
    cache: dict = {}

    def get(method: str):
        if method not in cache:
            with _threads(EMBEDDED_THREADS):
                cache[method] = randomisation_table(model, images, method)
        return cache[method]

    return get


@pytest.mark.parametrize("mode", ["cascading", "independent"])
@pytest.mark.parametrize("method", _randomisation_params())
def test_model_randomisation(method, mode, randomisation_tables):
    table = randomisation_tables(method)
    delta, ci, status, reason = randomisation_verdict(table, mode)
    claim = beyond_claim(
        f"embedded-beyond-randomisation-{mode}-{method}",
        f"{method}'s map changes under {mode} model randomisation (Spearman rho < {RANDOMISATION_THRESHOLD})",
        method,
        "none",
        f"{mode}-randomisation",
        "spearman_rho_minus_threshold",
        "rho",
        0.0,
        "Adebayo et al., Sanity Checks for Saliency Maps, NeurIPS 2018",
    )
    measured = None if delta is None else delta + RANDOMISATION_THRESHOLD
    n = int(table[table["mode"] == mode]["image"].nunique())
    verdict = Verdict(claim, status, measured=measured, delta=delta, interval=ci, n_images=n, reason=reason)
    print(table[table["mode"] == mode].groupby("randomised", sort=False)["spearman"].mean().to_string())
    known = KNOWN_SURVIVES.get((method, mode))
    if status == "vacuous":
        record(verdict, "skipped")
        pytest.skip(reason)
    if known is not None:
        if status != "contradicted":
            record(verdict, "failed", f"listed in KNOWN_SURVIVES but {status}: update the list")
            pytest.fail(f"{method} {mode}: listed as surviving randomisation but {status} ({reason})")
        record(verdict, "xfailed", f"known: {known}")
        pytest.xfail(f"{method} {mode} survives randomisation: {known}")
    record(verdict, "failed" if status == "contradicted" else "passed")
    assert status != "contradicted", f"{method} {mode}: {reason} (delta {delta:+.3f}, 95% CI {ci})"


@pytest.mark.claim
@pytest.mark.parametrize(
    ("baseline", "expected"),
    [("centre_map", "contradicted"), ("random_map", "contradicted"), ("constant_map", "vacuous")],
)
def test_model_randomisation_negative_controls(baseline, expected, randomisation_tables):
    """The check can fail: maps that ignore the model survive randomisation (or are constant)."""
    table = randomisation_tables(baseline)
    delta, ci, status, reason = randomisation_verdict(table, "cascading")
    claim = beyond_claim(
        f"embedded-beyond-randomisation-control-{baseline}",
        f"negative control: {baseline} ignores the weights",
        baseline,
        "none",
        "cascading-randomisation",
        "spearman_rho_minus_threshold",
        "rho",
        0.0,
        "Adebayo et al., Sanity Checks for Saliency Maps, NeurIPS 2018",
        control=baseline,
    )
    n = int(table["image"].nunique())
    record(
        Verdict(
            claim,
            status,
            measured=None if delta is None else delta + RANDOMISATION_THRESHOLD,
            delta=delta,
            interval=ci,
            n_images=n,
            reason=reason,
        ),
        "passed" if status == expected else "failed",
    )
    assert status == expected, f"{baseline}: expected {expected}, got {status} ({reason})"
