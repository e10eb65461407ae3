"""The harness's metrics against Quantus' (optional extra `quantus`; nightly: `-m slow`) on identical maps and models.

For each metric both define: the two values agree (tolerance stated per check), or the convention that
differs is named and checked exactly (the harness's value recomputed from Quantus' under that convention).

- deletion (RISE) vs quantus.PixelFlipping: equal curves where both remove the same pixels (1e-6 softmax units);
  differences: Quantus ranks and removes features of the map broadcast to (3, H, W), so a pixel is whole only every
  third feature; its "black" baseline is the image's minimum, not 0; its AUC is a trapezoid with dx = 1 over the
  removal steps without the clean point, ours over fraction in [0, 1] with it.
- insertion: Quantus 0.6 has no insertion metric.
- ROAD vs quantus.ROAD: Quantus' ROAD cannot rank a one-channel map on an RGB image (it indexes pixels with
  feature indices: IndexError); its noisy linear imputation, called on the same pixels, equals ours (1e-10 pixel
  units, noise 0), so do the correctness curves built from it. Noise: both N(0, noise) per removed value, from
  different streams (numpy's global one there, a seeded generator here).
- max-sensitivity vs quantus.MaxSensitivity: equal (relative 1e-5, relative_l2 units) under the harness's
  perturbations; Quantus' default perturbation is U(-0.2, 0.2) per value, not clipped to the pixel range, ours
  U(-2/255, 2/255) clipped; a zero clean map gives NaN there (divided by its norm), the perturbed maps' largest
  norm here (divided by 1).
- model randomisation vs quantus.MPRT: equal Spearman rho (1e-6) for the same randomised model; Quantus
  randomises one module at a time by its reset_parameters() (torch seed `seed + 1` before each), the harness
  whole blocks by N(0, std of each weight), so their cascades differ by construction; a constant map gives NaN
  for its image here, and makes Quantus' batched Spearman fail for the whole batch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow
quantus = pytest.importorskip("quantus", reason="optional extra `quantus` (pip install fvit-bench[quantus])")

SIZE = 64  # the tiny ViT's input, pixels
METHOD = "generic_attention"  # non-constant maps on the tiny model for every image (MaxSensitivity, MPRT)
STEPS = 8  # deletion fractions 0, 1/8, ..., 1: whole pixel counts (512 per step at 64x64)


@pytest.fixture(scope="module")
def world():
    """A tiny random ViT, 3 images in [0,1] with one black pixel each, distinct-valued maps, predicted classes."""
    from tiny_models import tiny_vit

    torch.set_num_threads(1)
    model = tiny_vit().eval()
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(3, 3, SIZE, SIZE, generator=gen) * 0.9 + 0.05
    images[:, :, 5, 7] = 0.0  # every image's minimum is 0 (Quantus' "black" baseline is the minimum)
    maps = torch.rand(3, SIZE, SIZE, generator=gen)  # distinct values: no ties in either ranking
    with torch.no_grad():
        target = model(images).argmax(dim=1)
    return model, images, maps, target


def test_deletion_equals_pixel_flipping_where_whole_pixels_are_removed(world, monkeypatch):
    from quantus.helpers.utils import calculate_auc

    from harness.metrics.insertion_deletion import curve_auc, probability_curve

    model, images, maps, target = world
    per_step = SIZE * SIZE // STEPS
    ours = probability_curve(model, images, maps, target, "deletion", num_steps=STEPS).numpy()
    theirs = np.asarray(
        quantus.PixelFlipping(features_in_step=per_step, normalise=False, abs=False, perturb_baseline="black")(
            model=model, x_batch=images.numpy(), y_batch=target.numpy(), a_batch=maps[:, None].numpy(), device="cpu"
        )
    )
    # 3 * H * W features, `per_step` a step: after step 3k - 1 exactly k * per_step whole pixels are at the minimum.
    assert theirs.shape == (3, 3 * STEPS)
    np.testing.assert_allclose(theirs[:, 2::3], ours[:, 1:], atol=1e-6)
    # The AUC rule: Quantus' trapezoid has dx = 1 over its points and no clean point; ours spans [0, 1] with it.
    monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)  # quantus 0.6 calls np.trapz, gone in NumPy 2.4
    their_auc = np.array([calculate_auc(c) for c in theirs[:, 2::3]])
    np.testing.assert_allclose(curve_auc(ours), (their_auc + (ours[:, 0] + ours[:, 1]) / 2) / STEPS, atol=1e-6)
    # The baseline: Quantus' "black" is each image's minimum, which is 0 only where the image has a 0.
    lifted = images * 0.5 + 0.25  # minimum 0.25
    black = quantus.PixelFlipping(features_in_step=per_step, normalise=False, perturb_baseline="black")(
        model=model, x_batch=lifted.numpy(), y_batch=target.numpy(), a_batch=maps[:, None].numpy(), device="cpu"
    )
    filled = lifted.clone()
    order = maps.flatten(1).argsort(dim=1, descending=True)[:, :per_step]
    filled.flatten(2).scatter_(2, order[:, None].expand(-1, 3, -1), 0.25)
    with torch.no_grad():
        at_min = model(filled).softmax(dim=1).gather(1, target[:, None])[:, 0].numpy()
    np.testing.assert_allclose(np.asarray(black)[:, 2], at_min, atol=1e-6)  # after 3 steps: per_step whole pixels
    assert not np.allclose(at_min, probability_curve(model, lifted, maps, target, "deletion", STEPS)[:, 1].numpy())


def test_quantus_has_no_insertion_metric():
    assert not [n for n in dir(quantus) if "insertion" in n.lower()]


def test_road_imputation_equals_quantus_and_its_ranking_fails_on_rgb(world):
    from quantus.functions.perturb_func import noisy_linear_imputation

    from harness.metrics.perturbation import PERTURBATION_STEPS, _top1, deleted_counts, deletion_order
    from harness.metrics.road import linear_impute, road_correctness, road_images

    model, images, maps, target = world
    with pytest.raises(IndexError):  # Quantus 0.6 ranks 3*H*W broadcast features but imputes H*W pixels
        quantus.ROAD(percentages=[10], noise=0.0, normalise=False, disable_warnings=True)(
            model=model, x_batch=images.numpy(), y_batch=target.numpy(), a_batch=maps[:, None].numpy(), device="cpu"
        )
    clean = images.double().numpy()
    order = deletion_order(maps, positive=True).numpy()
    stack = road_images(images.double(), maps, positive=True, noise=0.0).numpy()
    theirs = np.empty_like(stack)
    for s, k in enumerate(deleted_counts(SIZE * SIZE, PERTURBATION_STEPS)):
        for i in range(len(images)):
            removed = np.zeros(SIZE * SIZE, dtype=bool)
            removed[order[i, :k]] = True
            imputed = noisy_linear_imputation(arr=clean[i], indices=np.flatnonzero(removed), noise=0.0)
            np.testing.assert_allclose(linear_impute(clean[i], removed.reshape(SIZE, SIZE)), imputed, atol=1e-10)
            theirs[s, i] = np.clip(imputed, 0.0, 1.0)
    np.testing.assert_allclose(stack, theirs, atol=1e-10)
    # The same images give the same correctness curve (MoRF, against the predicted class).
    from_theirs = torch.cat([images[None], torch.from_numpy(theirs).float()])
    correct = (_top1(model, from_theirs.flatten(0, 1), 256).view(from_theirs.shape[0], -1) == target[None]).float().T
    assert torch.equal(road_correctness(model, images, maps, target, positive=True, noise=0.0), correct)


@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")  # Quantus' nanmax over the zero map's NaN
def test_max_sensitivity_equals_quantus_under_the_same_perturbations(world):
    from quantus.functions.perturb_func import batch_uniform_noise

    from harness.explainers.registry import get_explainer
    from harness.metrics.sensitivity import RADIUS, max_sensitivity

    model, images, _, target = world
    explainer, samples = get_explainer(METHOD), 3
    ours = max_sensitivity(explainer, model, images, target, radius=RADIUS, samples=samples, seed=0).numpy()

    gen = torch.Generator().manual_seed(0)  # the harness's draws, replayed in its order (one per sample)

    def replay(arr: np.ndarray, indices: np.ndarray, **_: object) -> np.ndarray:
        noise = (torch.rand(images.shape, generator=gen) * 2 - 1) * RADIUS
        return (images + noise).clamp(0, 1).reshape(arr.shape).numpy()

    def explain(model, inputs, targets, **_: object) -> np.ndarray:
        return explainer(model, torch.from_numpy(np.asarray(inputs)).float(), torch.as_tensor(targets)).numpy()

    a_batch = explain(model, images.numpy(), target.numpy())[:, None]
    theirs = quantus.MaxSensitivity(nr_samples=samples, perturb_func=replay, normalise=False, abs=False)(
        model=model,
        x_batch=images.numpy(),
        y_batch=target.numpy(),
        a_batch=a_batch,
        explain_func=explain,
        device="cpu",
    )
    np.testing.assert_allclose(np.asarray(theirs), ours, rtol=1e-5)

    # A zero clean map (image 1's): Quantus divides by its norm 0 (NaN); the harness by 1, so it reports the
    # perturbed maps' largest norm (0 here, as they are zero too). Quantus refuses a batch of only zero maps.
    def zeroed(model, images, target):
        maps = explainer(model, images, target).clone()
        maps[1] = 0.0
        return maps

    gen.manual_seed(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        nan = quantus.MaxSensitivity(nr_samples=samples, perturb_func=replay, normalise=False, abs=False)(
            model=model,
            x_batch=images.numpy(),
            y_batch=target.numpy(),
            a_batch=zeroed(model, images, target)[:, None].numpy(),
            explain_func=lambda model, inputs, targets, **_: zeroed(
                model, torch.from_numpy(np.asarray(inputs)).float(), torch.as_tensor(targets)
            ).numpy(),
            device="cpu",
        )
    mine = max_sensitivity(zeroed, model, images, target, radius=RADIUS, samples=samples, seed=0).numpy()
    assert np.isnan(nan[1]) and mine[1] == 0.0
    np.testing.assert_allclose(np.asarray(nan)[[0, 2]], mine[[0, 2]], rtol=1e-5)
    # The perturbation that differs: Quantus' default adds U(-lower_bound, lower_bound) and does not clip.
    flat = images.numpy().reshape(len(images), -1)
    np.random.seed(3)
    perturbed = batch_uniform_noise(flat, np.tile(np.arange(flat.shape[1]), (len(flat), 1)), lower_bound=0.2)
    np.random.seed(3)
    np.testing.assert_array_equal(perturbed, (flat + np.random.uniform(-0.2, 0.2, size=flat.shape)).astype(flat.dtype))
    assert perturbed.min() < 0 and perturbed.max() > 1


def test_randomisation_rho_equals_quantus_mprt_for_the_same_randomised_model(world):
    import copy

    from harness.claims.beyond import rank_similarity
    from harness.explainers.registry import explain

    model, images, _, target = world
    seed = 42

    def explain_fn(model, inputs, targets, **_: object) -> np.ndarray:
        return explain(METHOD, model, torch.from_numpy(np.asarray(inputs)).float(), torch.as_tensor(targets))[
            :, None
        ].numpy()

    scores = quantus.MPRT(layer_order="top_down", seed=seed, abs=False, normalise=False, disable_warnings=True)(
        model=model,
        x_batch=images.numpy(),
        y_batch=target.numpy(),
        a_batch=None,
        explain_func=explain_fn,
        device="cpu",
    )
    layers = [name for name in scores if name != "original"]
    assert layers[0] == "vit.head"  # top-down: the classifier head first, one module at a time
    reference = explain(METHOD, model, images, target)
    randomised = copy.deepcopy(model)
    torch.manual_seed(seed + 1)
    randomised.vit.head.reset_parameters()  # Quantus' rule for its first step
    ours = rank_similarity(reference, explain(METHOD, randomised, images, target))
    np.testing.assert_allclose(np.asarray(scores["vit.head"]), ours, atol=1e-6)
    np.testing.assert_allclose(np.asarray(scores["original"]), 1.0, atol=1e-6)
    # A constant map: the harness's rho is NaN for that image; Quantus' batched Spearman fails on the whole batch.
    from quantus.functions.similarity_func import correlation_spearman

    flat = reference.flatten(1).numpy().copy()
    flat[1] = 0.0
    assert np.isnan(rank_similarity(torch.from_numpy(flat), reference)[1])
    with pytest.raises(AttributeError), np.errstate(invalid="ignore"), pytest.warns(Warning):
        correlation_spearman(flat, reference.flatten(1).numpy(), batched=True)
