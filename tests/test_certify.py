"""The Gaussian-smoothing top-k certificate (Cohen et al. 2019 applied to top-k membership) by hand."""

import numpy as np
import pytest
import torch
from scipy.stats import norm

from harness.certify import (
    SmoothingSetup,
    TopkCertificate,
    _radius,
    clopper_pearson_lower,
    clopper_pearson_upper,
    pgd_l2,
    rest_of,
)


def test_clopper_pearson_by_hand():
    # all n successes: the one-sided lower bound solves p^n = alpha -> p = alpha^(1/n)
    assert clopper_pearson_lower(np.array([10]), 10, 0.05)[0] == pytest.approx(0.05**0.1)
    assert clopper_pearson_lower(np.array([0]), 10, 0.05)[0] == 0.0
    # no successes: the upper bound solves (1 - p)^n = alpha
    assert clopper_pearson_upper(np.array([0]), 10, 0.05)[0] == pytest.approx(1 - 0.05**0.1)


def test_radius_is_sigma_times_the_normal_quantile():
    assert _radius(np.array([0.9]), 0.25)[0] == pytest.approx(0.25 * norm.ppf(0.9))
    assert _radius(np.array([0.5, 0.3]), 0.25).tolist() == [0.0, 0.0]  # abstain


def test_overlap_and_faithful_radius_by_hand():
    cert = TopkCertificate(
        in_set=np.array([[True, True, False, False]]),
        radii=np.array([[0.3, 0.1, 0.5, 0.0]]),
        prediction=np.array([0]),
        prediction_radius=np.array([0.2]),
        k=2,
        sigma=0.25,
        alpha=0.05,
        n=10,
    )
    assert cert.certified_overlap(0.05).tolist() == [1.0] and cert.certified_overlap(0.2).tolist() == [0.5]
    assert cert.faithful_radius(1.0).tolist() == [0.1]  # both in-set entries: min radius 0.1
    assert cert.faithful_radius(0.5).tolist() == [0.2]  # one entry (0.3), capped by the prediction's 0.2


def test_l2_pgd_stays_in_the_ball_and_the_box():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    r = torch.tensor([0.5, 0.0])
    adv = pgd_l2(lambda a: a.sum(), x, r, steps=5)
    dist = (adv - x).flatten(1).norm(dim=1)
    assert dist[0] <= 0.5 + 1e-5 and dist[0] > 0.4 and dist[1] == 0 and adv.min() >= 0 and adv.max() <= 1


def test_uncertifiable_variants_and_settings_are_named():
    with pytest.raises(ValueError, match="denoise_only"):
        rest_of("denoise_only")
    from harness.models.mini import load_mini_vit

    with pytest.raises(ValueError, match="denoiser"):
        SmoothingSetup("rollout", "carlini", 0.1).check(load_mini_vit())


@pytest.fixture(scope="module")
def embedded():
    from harness.data.registry import get_dataset
    from harness.models.mini import load_mini_vit

    ds = get_dataset("embedded", None)
    return load_mini_vit(), torch.stack([ds[i].image for i in range(1)])


def test_attacks_beyond_the_certificate_are_seen_to_break_it(embedded):
    """The check can fail: far beyond the certified radius, the same attack breaks certified entries."""
    from harness.claims.beyond import certified_region_check
    from harness.data.registry import get_dataset

    model = embedded[0]
    # Test image 2: the first one whose prediction and top-k entries the smoothed rollout certifies at all (on
    # images 0 and 1 nothing is certified beyond radius 0 at these settings: nothing to break).
    images = get_dataset("embedded", None)[2].image[None]
    setup = SmoothingSetup("rollout", "noise_only", 8 / 255)
    far = certified_region_check(model, images, setup, n0=8, n=32, attack_steps=10, attack_scale=1000.0)
    assert far.tested > 0 and far.significant_breaks > 0 and far.status == "contradicted"
    assert float(far.table["empirical_overlap"].iloc[0]) < 0.5
