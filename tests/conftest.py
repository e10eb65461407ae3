"""Shared fixtures: small models built from configs, and the shipped embedded-world checkpoints."""

from __future__ import annotations

import os

import pytest
import torch

# Two-core machines: keep torch from oversubscribing when pytest runs beside other work.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def random_mini_vit():
    """The embedded ViT architecture with seeded random weights (no checkpoint needed)."""
    from harness.models.classifier import ViTClassifier
    from harness.models.mini import MINI_VIT_NORM, build_mini_vit

    torch.manual_seed(0)
    return ViTClassifier(build_mini_vit(), **MINI_VIT_NORM, name="random-mini-vit")


@pytest.fixture(scope="session")
def mini_vit():
    """The shipped, trained embedded-world ViT."""
    from harness.models.mini import load_mini_vit

    return load_mini_vit()


@pytest.fixture(scope="session")
def mini_denoiser():
    """The shipped, trained embedded-world diffusion denoiser."""
    from harness.models.denoiser import load_denoiser
    from harness.models.mini import MINI_DENOISER_DIR

    return load_denoiser(MINI_DENOISER_DIR)


@pytest.fixture(scope="session")
def embedded_batch():
    """(images, labels, masks) of the first 20 embedded test items."""
    from harness.data.embedded import EmbeddedShapes, stack

    return stack(EmbeddedShapes("test"), range(20))


SMALL_RUN = [
    "--limit",
    "4",
    "--batch-size",
    "4",
    "--samples",
    "2",
    "--methods",
    "rollout,raw_attention",
    "--radii",
    "0,8",
    "--threads",
    "1",
]


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """(output folder, printed text) of one small `fvit-bench run` (4 images, 2 methods, carlini DDS with
    2 samples, radii 0 and 8/255), shared by the CLI and report tests."""
    import contextlib
    import io

    from harness.cli import main

    out = tmp_path_factory.mktemp("small_run")
    printed = io.StringIO()
    before, cwd = torch.get_num_threads(), os.getcwd()
    os.chdir(out)  # the report looks for reports/claims and reports/cost here: none, whatever the checkout holds
    try:
        with contextlib.redirect_stdout(printed):
            code = main(["run", *SMALL_RUN, "--out", str(out)])
    finally:
        os.chdir(cwd)
        torch.set_num_threads(before)
    assert code == 0
    return out, printed.getvalue()
