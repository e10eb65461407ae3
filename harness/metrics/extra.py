"""The opt-in metrics beyond the papers, per image, as the runner stores them (task names in
`harness.runner.config.EXTRA_TASKS`): insertion/deletion curves, ROAD curves, max-sensitivity."""

from __future__ import annotations

import torch

from harness.metrics.insertion_deletion import probability_curve
from harness.metrics.road import road_correctness
from harness.metrics.sensitivity import max_sensitivity


def extra_metric_columns(
    tasks: tuple[str, ...],
    model,
    explainer,
    clean: torch.Tensor,
    attacked: torch.Tensor,
    maps: torch.Tensor,
    explained: torch.Tensor,
    labels: torch.Tensor,
    seed: int,
) -> dict[str, list]:
    """Column -> per-image values for the extra tasks in `tasks` (nothing when none is asked for).

    The curves rank the pixels of the CLEAN image by `maps` (the map of the `explained` class on the
    attacked image), as the perturbation test does; max-sensitivity perturbs the attacked image.
    insertion/deletion: softmax probability of `explained` (RISE); road_morf/road_lerf: top-1
    correctness vs `labels`; max_sensitivity: relative L2 change (see each module for conventions).
    """
    out: dict[str, list] = {}
    if "insertion_deletion" in tasks:
        for mode in ("insertion", "deletion"):
            out[mode] = probability_curve(model, clean, maps, explained, mode).tolist()
    if "road" in tasks:
        for name, positive in (("road_morf", True), ("road_lerf", False)):
            out[name] = road_correctness(model, clean, maps, labels, positive, seed=seed).tolist()
    if "max_sensitivity" in tasks:
        out["max_sensitivity"] = max_sensitivity(explainer, model, attacked, explained, seed=seed).tolist()
    return out
