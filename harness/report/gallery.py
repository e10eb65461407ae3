"""The map gallery: for a few images, the clean and the attacked map without and with each DDS variant.

Under each map: the prediction on that input (and whether it is the label; for a DDS map the smoothed
prediction, the majority vote over the purified samples, as FViT's prediction stability means it) and,
under the attacked map, FViT's top-k overlap with the clean map of the same setting, the quantity the faithfulness
table averages. The maps come from the run itself where it computed them (`MapCollector`, handed to
the runner), else they are computed for the gallery's images alone (`compute_gallery`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from harness.attacks.pgd import pgd_linf
from harness.metrics.faithfulness import topk_overlap
from harness.models.classifier import ViTClassifier
from harness.report.plots import pyplot

RADIUS_255 = 8.0  # the claims' attack radius (docs/PROTOCOL.md section 1: PGD 8/255)
NO_DDS = "none"


@dataclass
class GalleryCell:
    """One map of the gallery and what is written under it."""

    map: torch.Tensor  # (H, W) in [0,1]
    pred: int  # the predicted class on the map's input (DDS: the smoothed prediction)
    overlap: float | None = None  # top-k overlap with the clean map (attacked maps only)


@dataclass
class GalleryImage:
    """One row of the gallery: the clean and attacked input, its mask and label, and its maps."""

    item_id: str
    clean: torch.Tensor  # (3, H, W)
    attacked: torch.Tensor  # (3, H, W)
    mask: torch.Tensor  # (H, W)
    label: int
    cells: dict[tuple[str, str], GalleryCell]  # (dds, "clean" | "attacked") -> cell


class MapCollector:
    """Keeps the maps a run computes for the gallery's items (one method, radius 0 and RADIUS_255).

    The runner calls it once per finished unit with the unit's input batch and maps; units of items,
    methods or radii the gallery does not show are ignored.
    """

    def __init__(self, item_ids: Sequence[str], method: str, radius_255: float = RADIUS_255) -> None:
        self.item_ids, self.method, self.radius_255 = list(item_ids), method, float(radius_255)
        self.maps: dict[tuple[str, str, float], tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(
        self, items, method: str, dds: str, radius_255: float, inputs: torch.Tensor, maps: torch.Tensor
    ) -> None:
        if method != self.method or float(radius_255) not in (0.0, self.radius_255):
            return
        for k, item in enumerate(items):
            if item.item_id in self.item_ids:
                self.maps[(item.item_id, dds, float(radius_255))] = (inputs[k].detach().cpu(), maps[k].detach().cpu())

    def complete(self, variants: Sequence[str]) -> bool:
        """True when every (item, setting, clean/attacked) map of the gallery was collected."""
        return all(
            (i, d, r) in self.maps for i in self.item_ids for d in (NO_DDS, *variants) for r in (0.0, self.radius_255)
        )


def from_collector(collector: MapCollector, dataset_items, variants: Sequence[str], rows) -> list[GalleryImage]:
    """Gallery rows from the run's own maps; predictions and overlaps are the run's rows' numbers."""
    out = []
    for item in dataset_items:
        cells = {}
        for dds in (NO_DDS, *variants):
            for radius, kind in ((0.0, "clean"), (collector.radius_255, "attacked")):
                row = rows[
                    (rows["item_id"] == item.item_id)
                    & (rows["method"] == collector.method)
                    & (rows["dds"] == dds)
                    & (rows["radius_255"] == radius)
                ].iloc[0]
                overlap = None if kind == "clean" else float(row["topk_overlap"])
                smoothed = row.get("smoothed_pred")
                pred = int(row["pred"]) if dds == NO_DDS or smoothed is None or pd.isna(smoothed) else int(smoothed)
                cells[(dds, kind)] = GalleryCell(collector.maps[(item.item_id, dds, radius)][1], pred, overlap)
        attacked = collector.maps[(item.item_id, NO_DDS, collector.radius_255)][0]
        out.append(GalleryImage(item.item_id, item.image, attacked, item.mask, int(item.label), cells))
    return out


def compute_gallery(
    model: ViTClassifier,
    dataset_items,
    explainers: dict[str, Callable],
    radius_255: float,
    topk: float,
    attack_steps: int = 10,
    seed: int = 0,
) -> list[GalleryImage]:
    """Gallery rows computed for `dataset_items` alone: PGD at `radius_255`/255 on the prediction,
    each explainer ({dds: explainer}, "none" = plain) on the clean and the attacked images; a DDS map is
    labelled with the smoothed prediction (majority vote over its purified samples, as the run's rows)."""
    from harness.runner.experiment import PurifiedCache

    clean = torch.stack([it.image for it in dataset_items])
    adv = pgd_linf(model, clean, radius_255 / 255.0, steps=attack_steps, seed=seed)
    with torch.no_grad():
        pred_clean, pred_adv = model(clean).argmax(1), model(adv).argmax(1)
    cells: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = {}
    cache = PurifiedCache()
    for dds, explainer in explainers.items():
        shown = {}
        for kind, images, pred in (("clean", clean, pred_clean), ("attacked", adv, pred_adv)):
            maps = cache.explain(explainer, model, images, pred, kind, predicted=True, clean=clean)
            smoothed = cache.smoothed_pred(explainer, kind)
            shown[kind] = (maps, pred if smoothed is None else smoothed)
        cells[(dds, "clean")] = (*shown["clean"], None)
        cells[(dds, "attacked")] = (*shown["attacked"], topk_overlap(shown["clean"][0], shown["attacked"][0], topk))
    out = []
    for k, item in enumerate(dataset_items):
        row = {
            key: GalleryCell(maps[k].detach(), int(pred[k]), None if ov is None else float(ov[k]))
            for key, (maps, pred, ov) in cells.items()
        }
        out.append(GalleryImage(item.item_id, item.image, adv[k], item.mask, int(item.label), row))
    return out


def _topk_text(topk: float) -> str:
    """'top-10%' for a fraction of the map's pixels, 'top-50' for a count."""
    return f"top-{topk * 100:g}%" if topk < 1 else f"top-{int(topk)}"


def _name(cls: int, class_names: Sequence[str] | None) -> str:
    return class_names[cls] if class_names and 0 <= cls < len(class_names) else str(cls)


def render_gallery(
    images: Sequence[GalleryImage],
    method: str,
    variants: Sequence[str],
    radius_255: float,
    topk: float,
    path: Path,
    class_names: Sequence[str] | None = None,
    source: str = "",
) -> Path:
    """Rows = images; columns = clean image, attacked image, mask, then per setting (plain, each DDS
    variant) the clean and the attacked map, with the prediction and top-k overlap written under each."""
    settings = [NO_DDS, *variants]
    columns = 3 + 2 * len(settings)
    plt = pyplot()
    fig, axes = plt.subplots(
        len(images), columns, figsize=(1.75 * columns, 2.05 * len(images) + 0.9), squeeze=False, layout="constrained"
    )
    headers = ["clean image", f"PGD {radius_255:g}/255", "object mask"]
    for dds in settings:
        name = "plain" if dds == NO_DDS else f"DDS {dds}"
        headers += [f"{name}\nclean map", f"{name}\nattacked map"]
    for r, img in enumerate(images):
        panels = [
            (img.clean, None, f"label {_name(img.label, class_names)}"),
            (img.attacked, None, ""),
            (img.mask.float(), "gray", ""),
        ]
        for dds in settings:
            for kind in ("clean", "attacked"):
                cell = img.cells[(dds, kind)]
                verdict = "right" if cell.pred == img.label else "wrong"
                text = f"{'pred' if dds == NO_DDS else 'smoothed pred'} {_name(cell.pred, class_names)} ({verdict})"
                if cell.overlap is not None:
                    text += f"\n{_topk_text(topk)} overlap {cell.overlap:.2f}"
                panels.append((cell.map, "jet", text))
        for c, (data, cmap, text) in enumerate(panels):
            ax = axes[r, c]
            if data.ndim == 3:
                ax.imshow(data.permute(1, 2, 0).clamp(0, 1).cpu().numpy())
            else:
                ax.imshow(data.cpu().numpy(), cmap=cmap, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(text, fontsize=7.5)
            if r == 0:
                ax.set_title(headers[c], fontsize=8)
    title = (
        f"Map gallery: {method}, plain and with each DDS variant, on the clean image and under PGD "
        f"{radius_255:g}/255 (L-inf, [0,1] pixel units x 255). pred = the class the classifier predicts on "
        f"that input (smoothed pred: the majority vote over the DDS variant's purified samples); "
        f"{_topk_text(topk)} overlap = FViT's overlap of the attacked map's top pixels with the clean map's. "
        f"{source}"
    )
    fig.suptitle("\n".join(textwrap.wrap(title, int(16 * columns))), fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight", pad_inches=0.15)
    plt.close(fig)
    return path
