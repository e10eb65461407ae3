"""The shipped embedded-world checkpoints meet their bars, and the recipes that made them run."""

import json

import pytest
import torch
from safetensors.torch import load_file

from harness.models.denoiser import load_denoiser
from harness.models.mini import MINI_DENOISER_DIR, MINI_VIT_DIR, load_mini_vit
from harness.train.mini_denoiser import BAR_SIGMAS_255, one_shot_psnr_gain, train_mini_denoiser
from harness.train.mini_vit import evaluate_top1, train_mini_vit


def test_shipped_checkpoints_are_small_safetensors():
    files = [MINI_VIT_DIR / "model.safetensors", MINI_DENOISER_DIR / "diffusion_pytorch_model.safetensors"]
    assert all(f.is_file() for f in files)
    assert sum(f.stat().st_size for f in files) <= 20 * 1024 * 1024


def test_shipped_vit_reaches_80_percent_top1(mini_vit):
    """The cluttered world (the largest of 2-3 shapes on textured clutter) is harder than the single-shape world
    its curriculum starts on: the shipped ViT has 82.3% top-1 on its 1000 test images (the single-shape world's
    ViT had 90.7% there); 80% leaves room for another machine's float rounding, not for a worse checkpoint."""
    acc = evaluate_top1(mini_vit)
    print(f"mini ViT top-1 on the 1000-image embedded test split: {100 * acc:.1f}%")
    assert acc >= 0.80


def test_shipped_denoiser_one_shot_raises_psnr(mini_denoiser):
    # 32 images (one UNet batch per sigma): gains 8.8..12.3 dB, within 0.1 dB of those on 100 images and of the
    # recipe's 200-image 8.7..12.2 dB (the PSNR is over all pixels, so it settles fast), far above the bar.
    gains = one_shot_psnr_gain(mini_denoiser, tuple(s / 255 for s in BAR_SIGMAS_255), length=32)
    for sigma, g in gains.items():
        print(
            f"sigma={sigma * 255:.0f}/255 (pixel units): noisy {g['noisy_db']:.2f} dB -> "
            f"one-shot {g['denoised_db']:.2f} dB (gain {g['gain_db']:+.2f} dB)"
        )
    assert all(g["gain_db"] > 0 for g in gains.values())
    assert gains[16 / 255]["gain_db"] >= 3.0


def test_shipped_vit_supports_the_perturbation_test(mini_vit):
    """Deleting the least relevant 10% of pixels (by rollout) must hurt far less than deleting the most
    relevant 10%: otherwise positive and negative perturbation AUCs measure only the shock of black pixels.
    Measured on the shipped ViT, first 100 test images: 77% vs 26% top-1 (before the deletion stage of
    the recipe: 13% vs 23%)."""
    from harness.data.embedded import EmbeddedShapes, stack
    from harness.explainers import explain
    from harness.metrics.perturbation import perturbation_correctness

    images, labels, _ = stack(EmbeddedShapes("test"), range(100))
    maps = explain("rollout", mini_vit, images)
    at_10 = {  # only the 10% step is read: the other 8 are not computed (the same 77% / 26%)
        pos: perturbation_correctness(mini_vit, images, maps, labels, pos, steps=(0.1,))[:, 1].float().mean().item()
        for pos in (True, False)
    }
    print(f"top-1 with 10% deleted: most relevant first {at_10[True]:.2f}, least relevant first {at_10[False]:.2f}")
    assert at_10[False] - at_10[True] >= 0.3


def test_vit_recipe_is_deterministic_and_loadable(tmp_path):
    kw = dict(steps=3, batch_size=8, train_size=40, eval_size=20, threads=1, deletion=0.5)
    train_mini_vit(tmp_path / "a", **kw)
    train_mini_vit(tmp_path / "b", **kw)
    wa, wb = load_file(str(tmp_path / "a/model.safetensors")), load_file(str(tmp_path / "b/model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    model = load_mini_vit(tmp_path / "a")
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 10)
    assert json.loads((tmp_path / "a/config.json").read_text())["meta"]["steps"] == 3


def test_denoiser_recipe_is_deterministic_and_loadable(tmp_path):
    kw = dict(steps=2, batch_size=4, train_size=16, eval_size=2, threads=1)  # eval: meta only, not the weights
    train_mini_denoiser(tmp_path / "a", **kw)
    train_mini_denoiser(tmp_path / "b", **kw)
    a, b = load_denoiser(tmp_path / "a"), load_denoiser(tmp_path / "b")
    sa, sb = a.unet.state_dict(), b.unet.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.one_shot(torch.rand(1, 3, 64, 64), 16 / 255).shape == (1, 3, 64, 64)


def test_missing_checkpoints_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        load_mini_vit(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_denoiser(tmp_path / "nowhere")


def test_corrupt_vit_checkpoint_is_reported(tmp_path):
    train_mini_vit(tmp_path / "v", steps=1, batch_size=4, train_size=10, eval_size=10, threads=1)
    (tmp_path / "v/model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="mini ViT"):
        load_mini_vit(tmp_path / "v")


def test_staged_recipe_chains_its_stages(tmp_path, monkeypatch):
    from harness.train import mini_vit

    small = dict(batch_size=4, train_size=12, eval_size=10)
    stages = (
        {"steps": 1, "lr": 1e-3, "seed": 0, "world": "single", **small},
        {"steps": 2, "lr": 5e-4, "seed": 1, "deletion": 0.5, "object_deletion": 0.5, **small},
    )
    monkeypatch.setattr(mini_vit, "RECIPE_STAGES", stages)
    meta = mini_vit.train_mini_vit_recipe(tmp_path / "out", threads=1)
    first, last = meta["stages"]
    assert (first["world"], last["world"]) == ("single", "cluttered")  # the curriculum, then the embedded world
    assert (last["steps"], last["deletion"], last["object_deletion"]) == (2, 0.5, 0.5)
    assert last["init_from"] == "stage 0"  # the stage it went on from, not a temporary folder
    assert json.loads((tmp_path / "out/config.json").read_text())["meta"] == meta
    assert load_mini_vit(tmp_path / "out")(torch.rand(1, 3, 64, 64)).shape == (1, 10)
    # --from-stage 1 goes on from the checkpoint (stage 0's output) and keeps its stage's record
    resumed = mini_vit.train_mini_vit_recipe(tmp_path / "out", threads=1, start=1)
    assert resumed["stages"][0] == first and resumed["stages"][1]["init_from"] == "stage 0"


def test_denoiser_recipe_chains_its_stages_and_resumes(tmp_path, monkeypatch):
    from harness.train import mini_denoiser

    small = dict(batch_size=2, train_size=6, eval_size=4)
    stages = (
        {"steps": 1, "lr": 1e-3, "seed": 0, "world": "single", **small},
        {"steps": 1, "lr": 5e-4, "seed": 1, "ema_decay": 0.99, **small},
    )
    monkeypatch.setattr(mini_denoiser, "RECIPE_STAGES", stages)
    out = tmp_path / "den"
    meta = mini_denoiser.train_mini_denoiser_recipe(out, threads=1)
    first, last = meta["stages"]
    assert (first["world"], last["world"], last["ema_decay"]) == ("single", "cluttered", 0.99)
    assert last["init_from"] == "stage 0" and json.loads((out / "training_meta.json").read_text()) == meta
    assert "_name_or_path" not in json.loads((out / "config.json").read_text())  # no temporary path in the asset
    resumed = mini_denoiser.train_mini_denoiser_recipe(out, threads=1, start=1)
    assert resumed["stages"][0] == first and resumed["stages"][1]["init_from"] == "stage 0"
    with pytest.raises(FileNotFoundError, match="--from-stage 1"):
        mini_denoiser.train_mini_denoiser_recipe(tmp_path / "none", threads=1, start=1)


def test_object_keeping_deletion_deletes_the_background_first():
    from harness.train.common import object_keeping_deletion

    gen = torch.Generator().manual_seed(0)
    images = torch.rand(64, 3, 32, 32) * 0.5 + 0.5  # no pixel is 0 before deletion
    masks = torch.zeros(64, 32, 32, dtype=torch.bool)
    masks[:, 10:14, 10:14] = True  # grown by <= 3 px: <= 100 of 1024 pixels, so p <= 0.9 never reaches it
    out = object_keeping_deletion(images, masks, 1.0, gen)
    deleted = (out == 0).all(dim=1)
    assert deleted.any() and not (deleted & masks).any()
    assert deleted.sum(dim=(1, 2)).float().std() > 0  # p is drawn per image
    untouched = object_keeping_deletion(images, masks, 0.0, gen)
    assert untouched is images
