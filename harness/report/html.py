"""The report page: verdicts, result tables, metric-vs-radius plots, the map gallery, the cost table.

`build_report` writes `report.html` and `report.md` next to each other; images are referenced
by relative paths so the folder can be moved or served as it is.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from harness.report.tables import markdown_table

SECTIONS = (
    ("verdicts", "Claim verdicts"),
    ("segmentation", "Segmentation under attack"),
    ("perturbation", "Perturbation tests"),
    ("faithfulness", "Faithfulness under attack"),
    ("cost", "Compute cost"),
)
_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; max-width: 1400px; color: #222; }
table { border-collapse: collapse; font-size: 0.8rem; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.3rem 0; }
.note { color: #555; font-size: 0.85rem; }
"""


SUMMARY_NOTE = (
    "One row per claim of PROTOCOL.md section 1 and metric, one column per explanation method: held, "
    "failed, xfailed (a known departure; its numbers and reason are in the table below) or skipped "
    "(paper scale without its inputs). embedded = the analogue on the embedded world."
)


def verdict_summary(verdicts: pd.DataFrame) -> pd.DataFrame | None:
    """Relation claims as a grid: (world, claim, metric) x method -> verdict; None if there are none."""
    needed = {"world", "group", "method", "metric", "verdict"}
    if not needed <= set(verdicts.columns):
        return None
    rel = verdicts[~verdicts["group"].isin(["anchor", "reported"])]
    if rel.empty:
        return None
    grid = rel.pivot_table(index=["world", "group", "metric"], columns="method", values="verdict",
                           aggfunc="first")
    grid.columns.name = None
    return grid.reset_index().rename(columns={"group": "claim"})


def _read_markdown_notes(md_path: Path) -> list[str]:
    """The bullet lines (context and conventions) of a table's markdown file."""
    if not md_path.is_file():
        return []
    return [line[2:] for line in md_path.read_text().splitlines() if line.startswith("- ")]


def build_report(
    out_dir: Path,
    tables: dict[str, Path],
    images: Sequence[tuple[str, Path]] = (),
    title: str = "fvit-bench report",
) -> tuple[Path, Path]:
    """Write report.html and report.md in `out_dir` from table CSVs (name -> csv path) and images."""
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    md = [f"# {title}", ""]
    for name, heading in SECTIONS:
        csv = tables.get(name)
        if csv is None or not Path(csv).is_file():
            continue
        frame = pd.read_csv(csv)
        notes = _read_markdown_notes(Path(csv).with_suffix(".md"))
        if name == "verdicts":
            summary = verdict_summary(frame)
            if summary is not None:
                parts.append("<h2 id='verdict-summary'>Claims at a glance</h2>")
                parts.append(summary.to_html(index=False, classes="table-verdict-summary", na_rep=""))
                parts.append(f"<p class='note'>{html.escape(SUMMARY_NOTE)}</p>")
                md += ["## Claims at a glance", "", markdown_table(summary), "", SUMMARY_NOTE, ""]
            frame = frame.drop(columns=["statement"], errors="ignore")  # long; kept in verdicts.csv/.md
        parts.append(f"<h2 id='{name}'>{html.escape(heading)}</h2>")
        parts.append(frame.to_html(index=False, float_format=lambda v: f"{v:.3f}", classes=f"table-{name}",
                                   na_rep=""))
        if notes:
            parts.append("<ul class='note'>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
        md += [f"## {heading}", "", markdown_table(frame, floatfmt=".3f"), ""] + [f"- {n}" for n in notes] + [""]
    if images:
        parts.append("<h2 id='figures'>Figures</h2>")
        md += ["## Figures", ""]
        for caption, path in images:
            rel = os.path.relpath(path, out_dir)
            parts.append(f"<figure><img src='{html.escape(rel)}' alt='{html.escape(caption)}'>"
                         f"<figcaption class='note'>{html.escape(caption)}</figcaption></figure>")
            md += [f"![{caption}]({rel})", ""]
    # Lets a headless browser (and the tests) see how many figures actually decoded.
    parts.append("<script>window.addEventListener('load', () => { const imgs = [...document.images]; "
                 "document.body.dataset.imagesLoaded = imgs.filter(i => i.complete && i.naturalWidth > 0).length; "
                 "document.body.dataset.imagesTotal = imgs.length; });</script>")
    parts.append("</body></html>")
    html_path, md_path = out_dir / "report.html", out_dir / "report.md"
    html_path.write_text("\n".join(parts))
    md_path.write_text("\n".join(md) + "\n")
    return html_path, md_path
