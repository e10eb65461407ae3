"""Device consistency on CPU: one chunk of a run (every task, method and DDS variant, clean and PGD at 8/255)
with the models and data on a fake second device (`harness.runner.device_check`), so a tensor or generator
left on the CPU fails here as it would on CUDA; and the negative tests that show the check catches one.

Covered: every torch call of those units (module internals included), the generators of DDS and PGD, the
host syncs per unit. Not covered (only a GPU shows them): fp16/bf16 overflow and CUDA kernels' numerics,
memory use, the cost of each sync, and code behind `device.type == "cuda"` (scripts/gpu_smoke.sh runs those).
"""

from __future__ import annotations

import pytest
import torch

from harness.attacks.pgd import pgd_linf
from harness.cost.gpu_smoke import tiny_models
from harness.explainers.registry import get_explainer, names
from harness.metrics.perturbation import perturbation_correctness
from harness.runner import experiment
from harness.runner.config import DEFAULT_TASKS, EXTRA_TASKS, DDSSpec, ExperimentConfig
from harness.runner.device_check import FAKE_DEVICE, DeviceConsistencyMode, DeviceMixError
from harness.smoothing import dds
from harness.smoothing.dds import VARIANTS, smooth

FVIT_FAMILY = ("fvit", "re", "denoise_only")

SMALL_SIGMA = 2 / 255  # [0,1] pixel units: 8 UNet calls per fvit-family sample instead of 45 (same code)
# One unit of each paper task per DDS variant (identity control included), clean and attacked at 8/255.
CFG = ExperimentConfig(
    name="device-check",
    device=str(FAKE_DEVICE),
    methods=("transformer_attribution",),
    dds=tuple(DDSSpec(v, samples=1, sigma=SMALL_SIGMA if v in FVIT_FAMILY else None) for v in VARIANTS),
    radii_255=(0, 8),
    tasks=DEFAULT_TASKS,
    explain_classes=("pred", "target"),
    attack_steps=1,
    limit=2,
    batch_size=2,
)
# The opt-in tasks (insertion/deletion, ROAD, max-sensitivity) on a plain method.
EXTRA = CFG.replace(methods=("raw_attention",), dds=(), tasks=EXTRA_TASKS)
SMALL = CFG.replace(dds=(DDSSpec("noise_only", samples=1),), radii_255=(8,), tasks=("segmentation",))


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one torch thread is faster than two (the root conftest restores the count after each test)."""
    torch.set_num_threads(1)


@pytest.fixture
def tiny_run(monkeypatch, tmp_path):
    """Run CFG (two embedded images: one chunk) with the tiny models built on the host, moved by the runner."""
    model, denoiser = tiny_models("cpu", image_size=64)
    monkeypatch.setattr(experiment, "load_classifier", lambda name, weights=None: model)
    monkeypatch.setattr(experiment, "load_denoiser_for", lambda cfg: denoiser)

    def run(cfg: ExperimentConfig) -> DeviceConsistencyMode:
        mode = DeviceConsistencyMode()
        with mode:
            experiment.run_experiment(cfg, tmp_path / cfg.config_hash(), progress=False)
        assert mode.on_device(next(model.parameters())) and mode.on_device(next(denoiser.parameters()))
        return mode

    return run


@pytest.mark.parametrize("cfg", [CFG, EXTRA], ids=["paper-tasks-every-dds-variant", "extra-tasks"])
def test_a_run_keeps_every_tensor_on_its_device(tiny_run, cfg):
    mode = tiny_run(cfg)
    assert mode.calls > 1_000  # every op of the units went through the check


def test_every_explainer_keeps_to_one_device():
    model, _ = tiny_models("cpu", image_size=64)
    with DeviceConsistencyMode() as mode:
        mode.place(model)
        images = torch.rand(2, 3, 64, 64).to(FAKE_DEVICE)
        for name in names(baselines=True):
            maps = get_explainer(name)(model, images)
            assert mode.on_device(maps), f"{name}: its maps left the device"


def test_a_tensor_moved_off_the_device_is_caught(tiny_run, monkeypatch):
    """The attacked batch of a unit moved to the host: the next op with the model's weights mixes devices."""
    attack = experiment.pgd_linf
    monkeypatch.setattr(experiment, "pgd_linf", lambda *a, **k: attack(*a, **k).cpu())
    with pytest.raises(DeviceMixError, match="host tensor"):
        tiny_run(SMALL)


def test_noise_drawn_on_the_host_is_caught(tiny_run, monkeypatch):
    """DDS noise drawn without device=: its generator is on the device, the draw on the host."""
    monkeypatch.setattr(dds, "gaussian_like", lambda images, gen: torch.randn(images.shape, generator=gen))
    with pytest.raises(DeviceMixError, match="generator on cpu:1 draws a tensor on cpu"):
        tiny_run(SMALL)


def test_tensors_on_two_real_devices_are_caught():
    x = torch.ones(2, 3)
    with DeviceConsistencyMode(), pytest.raises(DeviceMixError, match=r"\['cpu', 'meta'\]"):
        x + x.to("meta")


def test_numpy_of_a_device_tensor_is_caught():
    with DeviceConsistencyMode() as mode, pytest.raises(DeviceMixError, match="numpy"):
        mode.place(torch.ones(2)).numpy()


def test_a_units_host_syncs_do_not_grow_with_the_batch(tiny_run):
    """The runner reads each device tensor a unit stores into its rows once (`.tolist()`), not once per item."""
    cfg = SMALL.replace(tasks=DEFAULT_TASKS, explain_classes=("pred", "target"))
    one, two = (tiny_run(cfg.replace(limit=b, batch_size=b)).total_syncs() for b in (1, 2))
    assert one == two, f"one chunk of a run: {one} host syncs for 1 image, {two} for 2"


def _syncs(fn, mode: DeviceConsistencyMode) -> int:
    with mode.counting() as counted:
        fn()
    return sum(counted.values())


@pytest.mark.parametrize("part", ["pgd", "dds", "perturbation"])
def test_host_syncs_do_not_grow_with_the_batch(part):
    """No per-sample .item()/.cpu()/.numpy() in PGD, DDS (the fvit chain) or the perturbation test."""
    model, denoiser = tiny_models("cpu", image_size=64)
    rollout = get_explainer("rollout")
    counts = []
    for batch in (1, 3):
        mode = DeviceConsistencyMode()
        with mode:
            mode.place(model), mode.place(denoiser)
            images = torch.rand(batch, 3, 64, 64).to(FAKE_DEVICE)
            labels = torch.arange(batch).to(FAKE_DEVICE)
            maps = torch.rand(batch, 64, 64).to(FAKE_DEVICE)
            fn = {
                "pgd": lambda x=images: pgd_linf(model, x, 8 / 255, steps=3),
                "dds": lambda x=images: smooth(rollout, denoiser, "fvit", sigma=SMALL_SIGMA, samples=2)(model, x),
                "perturbation": lambda x=images, m=maps, y=labels: perturbation_correctness(model, x, m, y, True),
            }[part]
            counts.append(_syncs(fn, mode))
    assert counts[0] == counts[1], f"{part}: {counts[0]} host syncs for 1 image, {counts[1]} for 3"
