"""A gallery of explanation maps: image, mask, and maps without / with DDS, clean and attacked."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from harness.attacks.pgd import pgd_linf  # noqa: E402
from harness.models.classifier import ViTClassifier  # noqa: E402


def render_gallery(
    model: ViTClassifier,
    images: torch.Tensor,
    masks: torch.Tensor,
    explainers: dict[str, object],
    radius: float,
    path: Path,
    seed: int = 0,
) -> Path:
    """Rows = images; columns = image, mask, then each explainer on the clean and the attacked image.

    `explainers` maps a column label (e.g. "rollout", "rollout + DDS carlini") to an explainer;
    `radius` is the PGD L-inf radius in [0,1] pixel units.
    """
    adv = pgd_linf(model, images, radius, seed=seed)
    with torch.no_grad():
        pred_clean, pred_adv = model(images).argmax(1), model(adv).argmax(1)
    columns: list[tuple[str, torch.Tensor]] = [("image", images), ("mask", masks.float())]
    for label, explainer in explainers.items():
        columns.append((f"{label}\nclean", explainer(model, images, pred_clean)))
        columns.append((f"{label}\nPGD {radius * 255:.0f}/255", explainer(model, adv, pred_adv)))
    n = images.shape[0]
    fig, axes = plt.subplots(n, len(columns), figsize=(1.6 * len(columns), 1.7 * n), squeeze=False)
    for col, (label, data) in enumerate(columns):
        for row in range(n):
            ax = axes[row, col]
            item = data[row]
            if item.ndim == 3:
                ax.imshow(item.permute(1, 2, 0).clamp(0, 1).cpu().numpy())
            else:
                ax.imshow(item.cpu().numpy(), cmap="jet" if label != "mask" else "gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(label, fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
