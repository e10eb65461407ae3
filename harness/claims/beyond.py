"""Checks beyond the papers, judged as claims: the certified top-k region, and model randomisation.

Verdicts: held / contradicted / inconclusive / vacuous (see each check). Each check builds a value
`Claim` (world "embedded", claim group "beyond") and a `Verdict`, so the verdict table records it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.stats import beta, bootstrap, spearmanr

from harness.attacks.differentiable import attack_form
from harness.certify import (
    BOUND_NAME,
    SmoothingSetup,
    TopkCertificate,
    certify_topk,
    clopper_pearson_upper,
    pgd_l2,
    rest_of,
    sample_counts,
    soft_topk_pixel_map,
)
from harness.claims.evaluate import Verdict
from harness.claims.registry import Claim
from harness.explainers.registry import explain
from harness.models.classifier import ViTClassifier

VERDICTS = ("held", "contradicted", "inconclusive", "vacuous")
RANDOMISATION_THRESHOLD = 0.5  # Spearman rho at or above which a map "survives" randomisation


def beyond_claim(
    cid: str,
    statement: str,
    method: str,
    dds: str,
    attack: str,
    metric: str,
    convention: str,
    reported: float,
    source: str,
    note: str = "",
    control: str = "",
) -> Claim:
    return Claim(
        id=cid,
        claim="beyond",
        source=source,
        table="beyond",
        statement=statement,
        world="embedded",
        model="mini-vit",
        dataset="embedded",
        method=method,
        dds=dds,
        attack=attack,
        radius_255=0.0,
        metric=metric,
        convention=convention,
        kind="value",
        reported=reported,
        relation=None,
        tolerance=0.0,
        provenance="harness check beyond the papers",
        confidence="check",
        note=note,
        control=control,
        expect="not_held" if control else "",
    )


# ---- certified top-k region ---------------------------------------------------------------------


@dataclass(frozen=True)
class CertifiedCheck:
    """Attacks within the certified radius vs the certificate: per-image table and the verdict."""

    table: pd.DataFrame
    certificate: TopkCertificate
    tested: int  # certified (image, entry) pairs and certified predictions attacked
    point_breaks: int  # of those, how many the point estimate at x_adv shows broken
    significant_breaks: int  # ... broken beyond Clopper-Pearson doubt (Bonferroni over the tested)
    status: str
    reason: str

    def verdict(self, claim: Claim) -> Verdict:
        rate = self.point_breaks / self.tested if self.tested else None
        ci = None
        if self.tested:  # two-sided 95% Clopper-Pearson interval of the break rate
            b, t = self.point_breaks, self.tested
            lo = 0.0 if b == 0 else beta.ppf(0.025, b, t - b + 1)
            hi = 1.0 if b == t else beta.ppf(0.975, b + 1, t - b)
            ci = (float(lo), float(hi))
        return Verdict(
            claim, self.status, measured=rate, delta=rate, interval=ci, n_images=len(self.table), reason=self.reason
        )


def differentiable_scores(method: str):
    """The differentiable form of `method` the attack uses: exact or a named surrogate
    (`harness.attacks.differentiable.attack_form`)."""
    return attack_form(method)[0]


def certified_region_check(
    model: ViTClassifier,
    images: torch.Tensor,
    setup: SmoothingSetup,
    n0: int = 8,
    n: int = 64,
    alpha: float = 0.05,
    overlap: float = 0.5,
    attack_steps: int = 5,
    eot: int = 4,
    seed: int = 0,
    attack_scale: float = 0.999,
) -> CertifiedCheck:
    """Certify, attack each image within its faithfulness radius at `overlap`, re-estimate, compare.

    The attack: L2 PGD (EOT over `eot` noise draws per step, through the variant's purifier) pushing
    the smoothed map's mass off the entries certified beyond the attack radius. Re-estimated with n
    fresh draws at x_adv, a certified entry is broken if it is out of the majority set there (point),
    significantly so if its one-sided Clopper-Pearson upper bound of P(in) is < 1/2 at level
    0.05 / (tested + 1). attack_scale: the attack radius over the faithfulness radius (below 1: within the
    certificate; above 1 probes beyond it, where breaks are allowed). held: no point break;
    inconclusive: point breaks, none significant; contradicted: a significant break; vacuous: nothing
    certified beyond radius 0.
    """
    score = differentiable_scores(setup.method)
    cert = certify_topk(model, images, setup, n0, n, alpha, seed)
    r_cert = 0.999 * cert.faithful_radius(overlap)
    protected = cert.in_set & (cert.radii > r_cert[:, None]) & (r_cert[:, None] > 0)
    r_attack = r_cert * attack_scale / 0.999
    mask = torch.from_numpy(protected).to(images)
    rest = rest_of(setup.variant)
    gen = torch.Generator(device=images.device).manual_seed(seed + 7)

    def loss(adv: torch.Tensor) -> torch.Tensor:
        reps = adv.repeat_interleave(eot, dim=0)
        z = reps + setup.sigma * torch.randn(reps.shape, generator=gen, device=reps.device, dtype=reps.dtype)
        pm = soft_topk_pixel_map(score(model, rest(setup.denoiser, z, setup.sigma, gen)), model)
        share = (pm * mask.repeat_interleave(eot, dim=0)).sum(dim=1) / pm.sum(dim=1).clamp_min(1e-12)
        return -share.sum()

    adv = pgd_l2(loss, images, torch.from_numpy(r_attack), attack_steps, seed)
    members, classes = sample_counts(model, adv, setup, n, seed + 3)
    pred_tested = (cert.prediction_radius > r_cert) & (r_cert > 0)
    pred_count = classes[np.arange(len(cert.prediction)), cert.prediction]
    tested = int(protected.sum() + pred_tested.sum())
    level = 0.05 / (tested + 1)
    point = protected & (members * 2 <= n)
    signif = protected & (clopper_pearson_upper(members, n, level) < 0.5)
    pred_point = pred_tested & (pred_count * 2 <= n)
    pred_signif = pred_tested & (clopper_pearson_upper(pred_count, n, level) < 0.5)
    adv_set = members * 2 > n
    l2 = (adv - images).flatten(1).norm(dim=1).cpu().numpy()
    table = pd.DataFrame(
        {
            "image": np.arange(len(images)),
            "method": setup.method,
            "dds": setup.variant,
            "sigma": setup.sigma,
            "k": cert.k,
            "prediction_radius_l2": cert.prediction_radius,
            "faithful_radius_l2": cert.faithful_radius(overlap),
            "attack_l2": l2,
            "certified_overlap_at_attack": [
                float(((cert.radii[i] > r_attack[i]) & cert.in_set[i]).sum()) / cert.k for i in range(len(images))
            ],
            "empirical_overlap": (cert.in_set & adv_set).sum(axis=1) / cert.k,
            "protected_entries": protected.sum(axis=1),
            "point_breaks": point.sum(axis=1) + pred_point,
            "significant_breaks": signif.sum(axis=1) + pred_signif,
        }
    )
    pb, sb = int(point.sum() + pred_point.sum()), int(signif.sum() + pred_signif.sum())
    if tested == 0:
        status, why = "vacuous", "nothing certified beyond radius 0 at these settings"
    elif sb:
        status, why = "contradicted", f"{sb} of {tested} certified items broken beyond Monte Carlo doubt"
    elif pb:
        status, why = "inconclusive", f"{pb} of {tested} certified items broken (point estimate), none significantly"
    else:
        status, why = "held", f"none of {tested} certified items broken by attacks within the certified radius"
    return CertifiedCheck(table, cert, tested, pb, sb, status, f"{BOUND_NAME}; {why}")


# ---- model randomisation (Adebayo et al. 2018) --------------------------------------------------


def randomised_copy(model: ViTClassifier, blocks: list[int], head: bool, seed: int) -> ViTClassifier:
    """A copy of `model` with blocks `blocks` (and the classifier head) re-initialised: each weight
    tensor redrawn N(0, std of that tensor), each bias and norm parameter kept at its init (0 / 1)."""
    out = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    modules = [out.vit.blocks[b] for b in blocks] + ([out.vit.head] if head else [])
    with torch.no_grad():
        for module in modules:
            for name, p in module.named_parameters():
                if p.ndim >= 2:
                    p.copy_(torch.randn(p.shape, generator=gen) * p.std().clamp_min(1e-3))
                elif "norm" in name:
                    p.fill_(1.0 if name.endswith("weight") else 0.0)
                else:
                    p.zero_()
    return out


def randomisation_stages(depth: int, mode: str) -> list[tuple[str, list[int], bool]]:
    """(label, blocks, head) per stage. cascading: head, then head + the top blocks one more at a time
    (down to all); independent: the head alone, then each block alone."""
    if mode == "cascading":
        return [("head", [], True)] + [
            (f"head+blocks{b}-{depth - 1}", list(range(b, depth)), True) for b in range(depth - 1, -1, -1)
        ]
    if mode == "independent":
        return [("head", [], True)] + [(f"block{b}", [b], False) for b in range(depth)]
    raise ValueError(f"mode must be 'cascading' or 'independent', got {mode!r}")


def rank_similarity(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """(B,) Spearman rank correlation of paired maps over their entries (NaN where one map is constant)."""
    out = []
    for x, y in zip(a.flatten(1).cpu().numpy(), b.flatten(1).cpu().numpy(), strict=True):
        out.append(np.nan if x.std() == 0 or y.std() == 0 else float(spearmanr(x, y).statistic))
    return np.asarray(out)


def randomisation_table(model: ViTClassifier, images: torch.Tensor, method: str, seed: int = 0) -> pd.DataFrame:
    """Per image and stage, Spearman rho between the map of `model` and of the randomised copy.

    Both maps explain the class the trained model predicts (a fixed target, as Adebayo et al.)."""
    with torch.no_grad():
        target = model(images).argmax(dim=1)
    reference = explain(method, model, images, target)
    rows = []
    for mode in ("cascading", "independent"):
        for stage, (label, blocks, head) in enumerate(randomisation_stages(len(model.vit.blocks), mode)):
            rnd = randomised_copy(model, blocks, head, seed + stage)
            rho = rank_similarity(reference, explain(method, rnd, images, target))
            rows += [
                {"method": method, "mode": mode, "stage": stage, "randomised": label, "image": i, "spearman": float(r)}
                for i, r in enumerate(rho)
            ]
    return pd.DataFrame(rows)


def randomisation_verdict(
    table: pd.DataFrame, mode: str, threshold: float = RANDOMISATION_THRESHOLD
) -> tuple[float | None, tuple[float, float] | None, str, str]:
    """(mean rho - threshold, its 95% bootstrap interval over images, status, reason) for `mode`.

    cascading: rho at the last stage (every block and the head randomised); independent: each image's
    mean rho over the single-block stages. held (passes the sanity check): the interval lies below 0;
    contradicted (the map survives randomisation): above 0; inconclusive: contains 0; vacuous: rho is
    undefined (constant maps) for every image.
    """
    sel = table[table["mode"] == mode]
    if mode == "cascading":
        per_image = sel[sel["stage"] == sel["stage"].max()].set_index("image")["spearman"]
    else:
        per_image = sel[sel["stage"] > 0].groupby("image")["spearman"].mean()
    values = per_image.dropna().to_numpy() - threshold
    if len(values) == 0:
        return None, None, "vacuous", "every map is constant: rank correlation undefined"
    delta = float(values.mean())
    if len(values) < 2 or np.ptp(values) == 0:
        ci = (delta, delta)
    else:
        res = bootstrap(
            (values,),
            np.mean,
            confidence_level=0.95,
            n_resamples=2000,
            method="percentile",
            random_state=np.random.default_rng(0),
        )
        ci = (float(res.confidence_interval.low), float(res.confidence_interval.high))
    if ci[1] < 0:
        status, why = "held", "the map changes when the weights are randomised (passes the sanity check)"
    elif ci[0] > 0:
        status, why = "contradicted", "the map survives randomising the weights (fails the sanity check)"
    else:
        status, why = "inconclusive", "the 95% interval of mean rho - threshold contains 0"
    return delta, ci, status, f"{why}; n={len(values)} images, threshold rho={threshold}"
