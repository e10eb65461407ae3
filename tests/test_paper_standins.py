"""The paper-scale path on format-exact stand-ins (tests/standins.py): every loader, the converter, each
shipped paper config and the `claims -m gpu` path run as a user with the real files runs them.

Smoke settings keep it to CPU seconds: 1 image, DDS sigma 1.3/255 pixel units (FViT's rule: 1 sampling
step instead of 45), 1 DDS sample per image in `run`, radii 0 and 8/255.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import h5py
import pandas as pd
import pytest
import torch
from PIL import Image
from standins import ADM_STANDIN, SEG_IMAGES, VAL_IMAGES, write_all

from harness.cli import main
from harness.runner.config import load_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "harness" / "configs").glob("paper_*.yaml"))
SMOKE_SIGMA = 1.3 / 255  # [0,1] pixel units: 1 ancestral step by FViT's rule
WEIGHTS = {
    "vit_base_patch16_224": ("FVIT_VIT_B16_WEIGHTS", "vit_safetensors"),
    "deit_base_patch16_224": ("FVIT_DEIT_B_WEIGHTS", "deit_pth"),
}


@pytest.fixture(scope="module")
def standins(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("paper-standins")
    paths = write_all(root)
    paths["adm_dir"] = root / "adm256_uncond"
    assert main(["convert-adm", str(paths["adm"]), "--out", str(paths["adm_dir"]), "--width", "32"]) == 0
    return paths


@pytest.fixture
def paper_env(standins, monkeypatch) -> dict[str, str]:
    env = {
        "FVIT_VIT_B16_WEIGHTS": str(standins["vit_pth"]),
        "FVIT_DEIT_B_WEIGHTS": str(standins["deit_pth"]),
        "FVIT_IMAGENET_SEG": str(standins["seg"]),
        "FVIT_IMAGENET_VAL": str(standins["val"]),
        "FVIT_ADM_DIR": str(standins["adm_dir"]),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_standins_have_the_real_layouts(standins):
    with h5py.File(standins["seg"], "r") as f:
        assert f["value/img"].dtype == h5py.ref_dtype and f["value/img"].shape == (SEG_IMAGES, 1)
        first = f[f["value/img"][0, 0]]
        assert first.shape == (3, 80, 60)  # MATLAB's transposed (3, W, H) of a 60 x 80 image
    modes = [Image.open(p).mode for p in sorted(standins["val"].glob("ILSVRC2012_val_*.JPEG"))]
    assert sorted(modes) == ["CMYK", "L", "RGB"]
    state = torch.load(standins["adm"], weights_only=True)
    assert "input_blocks.10.1.qkv.weight" in state and state["out.2.weight"].shape[0] == 6  # learned sigma
    assert state["time_embed.0.weight"].shape == (4 * ADM_STANDIN.model_channels, ADM_STANDIN.model_channels)
    deit = torch.load(standins["deit_pth"], weights_only=True)
    assert set(deit) == {"model"} and "blocks.0.attn.qkv.weight" in deit["model"]


def test_converted_adm_is_the_256_uncond_architecture(standins):
    from harness.models.denoiser import load_denoiser

    den = load_denoiser(standins["adm_dir"])
    assert den.sample_size == 256 and den.learned_sigma
    assert tuple(den.unet.config.block_out_channels) == tuple(32 * m for m in (1, 1, 2, 2, 4, 4))
    assert den.unet.config.attention_head_dim == 64


@pytest.mark.parametrize("which", ["vit_safetensors", "vit_pth"])
def test_vit_b16_loads_from_both_published_formats(standins, which):
    from harness.models.zoo import load_classifier

    with pytest.warns(UserWarning, match="2-block"):
        model = load_classifier("vit_base_patch16_224", standins[which])
    assert model.image_size == 224 and model.vit.embed_dim == 768 and model.num_classes == 1000


def test_imagenet_loaders_read_the_standins(standins):
    from harness.data.registry import get_dataset

    val = get_dataset("imagenet-val", standins["val"])
    assert len(val) == VAL_IMAGES and all(val[i].image.shape == (3, 224, 224) for i in range(VAL_IMAGES))
    seg = get_dataset("imagenet-seg", standins["seg"])
    assert len(seg) == SEG_IMAGES and seg[0].mask.shape == (224, 224) and seg[0].label == -1


def test_every_paper_claim_has_a_shipped_config():
    from harness.claims.build import COST_DATASET
    from harness.claims.paper import DATASET_OF
    from harness.claims.registry import load_claims

    configs = [load_config(p) for p in CONFIGS]
    assert {(c.model, c.dataset) for c in configs} == {
        (m, d) for m in WEIGHTS for d in ("imagenet-seg", "imagenet-val")
    }
    for claim in load_claims():
        if claim.world != "paper" or claim.dataset == COST_DATASET:
            continue
        dataset = {"imagenet-val-re8": "imagenet-val"}.get(DATASET_OF[claim.dataset], DATASET_OF[claim.dataset])
        cfg = next(c for c in configs if c.model == claim.model and c.dataset == dataset)  # re8: Re's subset of val
        assert claim.dds == "none" or claim.dds in {d.variant for d in cfg.dds}, claim.id
        assert claim.radius_255 in cfg.radii_255 and (
            claim.method == "none" or claim.method in cfg.resolved_methods()
        ), claim.id


def _config_param(path: Path):
    # DeiT-B's configs differ from ViT-B/16's only in the model (its .pth is loaded by the test below): slow.
    marks = [pytest.mark.slow] if "deit" in path.stem else []
    return pytest.param(path, id=path.stem, marks=marks)


def test_deit_b_loads_from_its_published_checkpoint(standins):
    from harness.models.zoo import load_classifier

    with pytest.warns(UserWarning, match="2-block"):
        model = load_classifier("deit_base_patch16_224", standins["deit_pth"])
    assert model.vit.embed_dim == 768 and model.num_classes == 1000 and len(model.vit.blocks) == 2


@pytest.mark.parametrize("config", [_config_param(p) for p in CONFIGS])
def test_each_paper_config_runs_plain_and_with_each_variant(config, paper_env, tmp_path, capsys):
    cfg = load_config(config)
    out = tmp_path / "run"
    # The perturbation configs' forwards dominate (ViT-B width at 224 px, 9 steps x 2 orders x 2 classes per
    # map): they run at the attacked radius only and without a gallery (without the clean radius the gallery
    # recomputes its maps); the segmentation configs keep the clean radius and the gallery.
    perturbation = cfg.dataset == "imagenet-val"
    radii = "8" if perturbation else "0,8"
    argv = [
        "run",
        "--config",
        str(config),
        "--limit",
        "1",
        "--methods",
        "transformer_attribution",
        "--radii",
        radii,
        "--sigma",
        str(SMOKE_SIGMA),
        "--samples",
        "1",
        "--gallery",
        "0" if perturbation else "4",
        "--out",
        str(out),
    ]
    assert main(argv) == 0, capsys.readouterr().err
    table = "segmentation" if cfg.dataset == "imagenet-seg" else "perturbation"
    frame = pd.read_csv(out / f"{table}.csv")
    assert {"none", *(d.variant for d in cfg.dds)} == set(frame["dds"])
    assert set(frame["radius_255"]) == {float(r) for r in radii.split(",")} and (frame["n_images"] == 1).all()


def _claims_tree(tmp_path: Path) -> Path:
    """A copy of claims/ and pyproject.toml: the verdict table goes to the copy's reports/, not the repo's."""
    tree = tmp_path / "tree"
    shutil.copytree(REPO / "claims", tree / "claims", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tree / "pyproject.toml")
    return tree


def _claims(tree: Path, env: dict[str, str], select: str, monkeypatch) -> pd.DataFrame:
    """`pytest claims/test_claims.py -m gpu -k select` from `tree`, run in this process: the same session,
    conftest and verdict table as that command in a shell, without a second interpreter importing torch,
    timm and diffusers again. The copy's `claims` package is imported for the run only (a `claims` module
    this process holds is set aside and put back); the verdict table goes to the copy's reports/."""
    settings = {**env, "FVIT_CLAIMS_LIMIT": "1", "FVIT_CLAIMS_DDS_SIGMA": str(SMOKE_SIGMA)}
    for key, value in {**settings, "FVIT_CLAIMS_OUT": str(tree / "runs")}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tree)
    monkeypatch.setattr(sys, "path", list(sys.path))  # pytest puts the copy first on it

    def ours(name: str) -> bool:
        return name == "claims" or name.startswith("claims.")

    aside = {name: sys.modules.pop(name) for name in [m for m in sys.modules if ours(m)]}
    try:
        code = pytest.main(["claims/test_claims.py", "-m", "gpu", "-k", select, "-q", "-p", "no:cacheprovider"])
        assert Path(sys.modules["claims.conftest"].__file__).is_relative_to(tree)  # the copy's, not the repo's
    finally:
        for name in [m for m in sys.modules if ours(m)]:
            del sys.modules[name]
        sys.modules.update(aside)
    assert code in (0, 1), f"pytest exit status {code}"  # 1: random weights fail values
    return pd.read_csv(tree / "reports" / "claims" / "verdicts.csv")


def test_plain_claims_need_no_denoiser(monkeypatch):
    from harness.claims.paper import group_of, missing_inputs, paper_config
    from harness.claims.registry import load_claims
    from harness.runner.experiment import load_denoiser_for

    for key in ("FVIT_VIT_B16_WEIGHTS", "FVIT_IMAGENET_SEG", "FVIT_ADM_DIR"):
        monkeypatch.delenv(key, raising=False)
    claims = [c for c in load_claims() if c.world == "paper"]
    plain = next(c for c in claims if c.dds == "none" and c.dataset == "imagenet-seg")
    dds = next(c for c in claims if c.dds == "fvit" and c.dataset == "imagenet-seg")
    assert not any("FVIT_ADM_DIR" in m for m in missing_inputs(plain))
    assert any("FVIT_ADM_DIR" in m for m in missing_inputs(dds))
    cfg = paper_config(claims, group_of(plain))
    assert cfg.dds == () and load_denoiser_for(cfg) is None
    assert [d.variant for d in paper_config(claims, group_of(dds)).dds] == ["fvit"]


def test_claims_gpu_path_runs_on_cpu_as_a_smoke_run(paper_env, tmp_path, monkeypatch):
    """`pytest claims -m gpu` with the files present: the claim is measured (not skipped) on the CPU, and
    the verdict table says it is a smoke run. Random weights: a value claim may fail, so exit 1 is fine.
    The DDS claim is measured in one of the smallest experiments (Re's DDS, 1 method, radius 0: 2 units instead of the
    32 of FViT's segmentation group); each shipped config with every variant and an attack runs above."""
    tree = _claims_tree(tmp_path)
    dds_id = "re2025-dev_run_760-transformer_attribution-re-r0-positive_auc"
    verdicts = _claims(tree, paper_env, dds_id, monkeypatch).set_index("claim")
    column = "outcome" if "outcome" in verdicts else "verdict"
    assert verdicts.loc[dds_id, column] != "skipped" and pd.notna(verdicts.loc[dds_id, "measured"])
    md = (tree / "reports" / "claims" / "verdicts.md").read_text()
    assert "SMOKE RUN" in md and "first 1 image" in md
