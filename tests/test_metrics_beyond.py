"""Insertion/deletion, ROAD and max-sensitivity against hand-computed cases; the runner's opt-in tasks."""

import numpy as np
import pytest
import torch
from torchvision.transforms.functional import gaussian_blur

from harness.metrics.insertion_deletion import curve_auc, probability_curve, substrate_images
from harness.metrics.registry import get_metric, higher_is_better, unit
from harness.metrics.road import linear_impute, road_correctness, road_images
from harness.metrics.sensitivity import max_relative_change, max_sensitivity


def _sum_model(x: torch.Tensor) -> torch.Tensor:
    """Logits [sum of all pixels, 0]: p(class 0) = sigmoid(sum)."""
    return torch.stack([x.sum(dim=(1, 2, 3)), torch.zeros(x.shape[0])], dim=1)


def test_curve_auc_by_hand():
    # trapezoid over x = 0, 0.5, 1 of [1, 0.5, 0]: 0.5 * 1.5 / 2 + 0.5 * 0.5 / 2 = 0.5
    assert curve_auc([1.0, 0.5, 0.0]) == pytest.approx(0.5)
    assert curve_auc(np.array([[1.0, 1.0], [0.0, 1.0]])) == pytest.approx([1.0, 0.5])
    with pytest.raises(ValueError, match="probabilities"):
        curve_auc([0.5, 1.5])


def test_deletion_curve_by_hand():
    images = torch.ones(1, 3, 2, 2)
    maps = torch.tensor([[[4.0, 3.0], [2.0, 1.0]]])
    stack = substrate_images(images, maps, "deletion", num_steps=2)  # fractions 0, 0.5, 1 -> 0, 2, 4 pixels
    assert stack[1, 0, :, 0].eq(0).all() and stack[1, 0, :, 1].eq(1).all() and stack[2].eq(0).all()
    curve = probability_curve(_sum_model, images, maps, torch.tensor([0]), "deletion", num_steps=2)
    expected = torch.sigmoid(torch.tensor([12.0, 6.0, 0.0]))  # pixel sums 12, 6, 0
    assert torch.allclose(curve[0], expected)


def test_insertion_goes_from_blurred_to_clean():
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    maps = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(1))
    stack = substrate_images(images, maps, "insertion", num_steps=4)
    assert torch.allclose(stack[0], gaussian_blur(images, [11, 11], [5.0, 5.0])) and torch.equal(stack[-1], images)
    top = maps.flatten(1).argmax(dim=1)  # the most relevant pixel is back from the first step on
    for i in range(2):
        assert torch.equal(stack[1, i].flatten(1)[:, top[i]], images[i].flatten(1)[:, top[i]])


def test_linear_imputation_by_hand():
    # centre of a 3x3: direct neighbours 1 (weight 1/6 each), diagonals 0 (1/12 each): 4/6 / 1 = 2/3
    img = np.zeros((1, 3, 3))
    img[0, [0, 1, 1, 2], [1, 0, 2, 1]] = 1.0
    removed = np.zeros((3, 3), bool)
    removed[1, 1] = True
    assert linear_impute(img, removed)[0, 1, 1] == pytest.approx(2 / 3)
    # a 1x4 row [1, ?, ?, 0]: x1 = (1 + x2) / 2, x2 = (x1 + 0) / 2 -> x1 = 2/3, x2 = 1/3
    row = np.array([[[1.0, 9.0, 9.0, 0.0]]])
    out = linear_impute(row, np.array([[False, True, True, False]]))
    assert out[0, 0] == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])
    with pytest.raises(ValueError, match="every pixel"):
        linear_impute(row, np.ones((1, 4), bool))


def test_road_removes_by_imputation_not_black_pixels():
    images = torch.full((1, 3, 6, 6), 0.5)
    maps = torch.rand(1, 6, 6, generator=torch.Generator().manual_seed(0))
    stack = road_images(images, maps, positive=True, steps=(0.5,), noise=0.0)
    assert torch.allclose(stack[0], images, atol=1e-6)  # a constant image imputes to itself
    noisy = road_images(images, maps, positive=True, steps=(0.5,), noise=0.01, seed=0)
    changed = (noisy[0] - images).abs().amax(dim=1)[0] > 0
    assert changed.sum() == 18 and changed.flatten()[maps.flatten().argsort(descending=True)[:18]].all()
    correct = road_correctness(
        lambda x: torch.stack([x.mean((1, 2, 3)), 0.4 * torch.ones(len(x))], 1),
        images,
        maps,
        torch.tensor([0]),
        positive=True,
    )
    assert correct.shape == (1, 10) and correct.eq(1).all()  # mean stays ~0.5 > 0.4 under imputation


def test_max_sensitivity_by_hand():
    clean = torch.tensor([[3.0, 4.0]])  # norm 5
    perturbed = torch.tensor([[[3.0, 4.0]], [[3.0, 0.0]], [[3.0, 5.0]]])  # changes 0, 4, 1 -> / 5
    assert torch.allclose(max_relative_change(clean, perturbed), torch.tensor([0.8]))
    images = torch.full((1, 3, 4, 4), 0.5)
    model = _sum_model

    def identity(model, x, target):  # the map is the first channel
        return x[:, 0]

    value = max_sensitivity(identity, model, images, torch.tensor([0]), radius=0.1, samples=4)
    # ||delta||_2 <= 0.1 * sqrt(16) = 0.4; ||clean map||_2 = 0.5 * 4 = 2
    assert 0 < float(value) <= 0.4 / 2 + 1e-6
    assert float(max_sensitivity(lambda m, x, t: torch.ones(1, 4, 4), model, images, radius=0.1)) == 0.0


def test_registry_states_units_and_directions():
    assert unit("insertion_auc") == "prob_trapz" and higher_is_better("insertion_auc")
    assert not higher_is_better("deletion_auc") and not higher_is_better("road_morf_auc")
    assert higher_is_better("road_lerf_auc") and not higher_is_better("max_sensitivity")
    assert get_metric("road_morf_auc").fn(np.r_[1.0, np.ones(9)]) == pytest.approx(1.0)


def test_runner_computes_the_extra_tasks_only_when_asked(tmp_path):
    from harness.runner.aggregate import all_tables
    from harness.runner.config import DEFAULT_CONFIG, ExperimentConfig
    from harness.runner.experiment import load_rows, run_experiment

    assert DEFAULT_CONFIG.tasks == ("segmentation", "perturbation")
    cfg = ExperimentConfig(
        methods=("raw_attention",),
        dds=(),
        radii_255=(0,),
        limit=2,
        batch_size=2,
        tasks=("insertion_deletion", "road", "max_sensitivity"),
    )
    run_experiment(cfg, tmp_path, progress=False)
    tables = all_tables(load_rows(tmp_path, cfg))
    row = tables["extra_metrics"].iloc[0]
    for name in ("insertion_auc", "deletion_auc", "road_morf_auc", "road_lerf_auc"):
        assert 0.0 <= row[name] <= 1.0
    assert row["max_sensitivity"] >= 0.0 and "segmentation" not in tables


def test_a_run_with_the_extra_tasks_writes_their_table_and_report(tmp_path, monkeypatch):
    """`fvit-bench run --tasks ...,road,...` writes extra_metrics.md/.csv with its conventions, and the report
    shows that table with 95% intervals and a figure per metric (it used to stop with a KeyError)."""
    import pandas as pd

    from harness.cli import main

    monkeypatch.chdir(tmp_path)  # the report looks for reports/claims and reports/cost here: none
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--limit",
                "2",
                "--batch-size",
                "2",
                "--methods",
                "raw_attention",
                "--dds",
                "",
                "--radii",
                "0,8",
                "--tasks",
                "segmentation,insertion_deletion,road,max_sensitivity",
                "--gallery",
                "0",
                "--threads",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    metrics = ("insertion_auc", "deletion_auc", "road_morf_auc", "road_lerf_auc", "max_sensitivity")
    table = pd.read_csv(out / "extra_metrics.csv")
    assert set(metrics) <= set(table.columns) and len(table) == 2  # raw_attention x radii 0, 8
    md = (out / "extra_metrics.md").read_text()
    for needed in (
        "prob_trapz",
        "re_trapz_div8",
        "relative_l2",
        "8 neighbours",
        "radius 2/255",
        "kernel 11 px, std 5 px",
        "10%..90%",
        "Config hash",
    ):
        assert needed in md, needed
    page = (out / "report.html").read_text()
    assert "id='extra_metrics'" in page and "id='conventions-extra_metrics'" in page
    assert "href='extra_metrics.md'" in page  # listed among the run's files
    for metric in metrics:
        assert f"{metric} 95% CI" in page, metric
        assert (out / "figures" / f"{metric}_vs_radius.png").is_file(), metric
