"""The report page (report.html) and its markdown twin (report.md), from a `Report`.

Order: summary (what ran, the headline per table with its interval, where the files are), claims at
a glance (only verdicts whose run matches, labelled with that run), the tables (each links the one
conventions section), figures, the map gallery, the cost table, then the conventions. Images are
referenced by relative paths, so the folder can be moved or served as it is.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.report.tables import markdown_table

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1240px; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; font-size: 0.8rem; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1rem 0; } img { width: 100%; max-width: 1200px; height: auto; border: 1px solid #ddd; }
.note { color: #555; font-size: 0.85rem; } .summary dt { font-weight: 600; } .summary dd { margin: 0 0 0.3rem 1rem; }
.headline li { margin: 0.2rem 0; } .wide { overflow-x: auto; }
"""


@dataclass
class Report:
    """Everything the page shows; every text already states its units."""

    title: str
    run: list[tuple[str, str]]  # (what, value): model, data, methods, DDS, radii, images, ...
    headline: list[str] = field(default_factory=list)  # one sentence per table
    headline_table: pd.DataFrame | None = None  # method x metric: DDS minus plain [95% interval]
    headline_note: str = ""
    files: list[tuple[str, str]] = field(default_factory=list)  # (path relative to the report, what)
    tables: dict[str, tuple[str, pd.DataFrame]] = field(default_factory=dict)  # name -> (heading, frame)
    conventions: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name (or "all") -> lines
    figures: list[tuple[str, Path]] = field(default_factory=list)  # (title, png)
    gallery: tuple[str, Path] | None = None
    claims: tuple[pd.DataFrame, str] | None = None  # (grid, where its verdicts come from)
    claims_note: str = ""  # why no grid is shown, or where else verdicts are
    cost: tuple[pd.DataFrame, list[str]] | None = None


def verdict_summary(verdicts: pd.DataFrame) -> pd.DataFrame | None:
    """Relation claims as a grid: (world, claim, form, metric) x method -> outcome; controls and
    value claims left out; None if there are none."""
    needed = {"world", "group", "form", "control", "method", "metric", "outcome"}
    if not needed <= set(verdicts.columns):
        return None
    rel = verdicts[~verdicts["group"].isin(["anchor", "reported", "effect"]) & verdicts["control"].fillna("").eq("")]
    if rel.empty:
        return None
    grid = rel.pivot_table(
        index=["world", "group", "form", "metric"], columns="method", values="outcome", aggfunc="first"
    )
    grid.columns.name = None
    return grid.reset_index().rename(columns={"group": "claim"})


def _frame_html(frame: pd.DataFrame, cls: str) -> str:
    return (
        "<div class='wide'>"
        + frame.to_html(index=False, float_format=lambda v: f"{v:.3f}", classes=cls, na_rep="", border=0)
        + "</div>"
    )


def _conv_link(name: str) -> str:
    return f"<p class='note'>Units and conventions: <a href='#conventions-{name}'>Conventions: {name}</a>.</p>"


def build_report(out_dir: Path, report: Report) -> tuple[Path, Path]:
    """Write report.html and report.md in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    esc = html.escape
    h = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(report.title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{esc(report.title)}</h1>",
    ]
    md = [f"# {report.title}", ""]

    # Summary: what ran, what it found, where the files are.
    h.append("<section id='summary'><h2>Summary</h2><dl class='summary'>")
    md += ["## Summary", ""]
    for what, value in report.run:
        h.append(f"<dt>{esc(what)}</dt><dd>{esc(value)}</dd>")
        md.append(f"- **{what}**: {value}")
    h.append("</dl>")
    if report.headline:
        h.append("<h3 id='headline'>Headline</h3><ul class='headline'>")
        h += [f"<li>{esc(line)}</li>" for line in report.headline]
        h.append("</ul>")
        md += ["", "### Headline", ""] + [f"- {line}" for line in report.headline]
    if report.headline_table is not None:
        h.append(_frame_html(report.headline_table, "table-headline"))
        md += ["", markdown_table(report.headline_table)]
    if report.headline_note:
        h.append(f"<p class='note'>{esc(report.headline_note)} <a href='#conventions'>Conventions</a>.</p>")
        md += ["", report.headline_note]
    if report.files:
        h.append("<h3 id='files'>Files</h3><ul>")
        h += [f"<li><a href='{esc(p)}'><code>{esc(p)}</code></a>: {esc(what)}</li>" for p, what in report.files]
        h.append("</ul>")
        md += ["", "### Files", ""] + [f"- `{p}`: {what}" for p, what in report.files]
    h.append("</section>")
    md.append("")

    h.append("<h2 id='verdict-summary'>Claims at a glance</h2>")
    md += ["## Claims at a glance", ""]
    if report.claims is not None:
        grid, source = report.claims
        h += [f"<p class='note'>{esc(source)}</p>", _frame_html(grid, "table-verdict-summary")]
        md += [source, "", markdown_table(grid), ""]
    if report.claims_note:
        h.append(f"<p class='note'>{esc(report.claims_note)}</p>")
        md += [report.claims_note, ""]

    for name, (heading, frame) in report.tables.items():
        h += [f"<h2 id='{name}'>{esc(heading)}</h2>", _conv_link(name), _frame_html(frame, f"table-{name}")]
        md += [
            f"## {heading}",
            "",
            f"Units and conventions: see [Conventions: {name}](#conventions-{name}).",
            "",
            markdown_table(frame, floatfmt=".3f"),
            "",
        ]

    if report.figures:
        h.append("<h2 id='figures'>Figures</h2>")
        md += ["## Figures", ""]
        for title, path in report.figures:
            rel = os.path.relpath(path, out_dir)
            h.append(f"<figure><img src='{esc(rel)}' alt='{esc(title)}'></figure>")
            md += [f"![{title}]({rel})", ""]
    if report.gallery is not None:
        caption, path = report.gallery
        rel = os.path.relpath(path, out_dir)
        h.append(
            f"<h2 id='gallery'>Map gallery</h2><p class='note'>{esc(caption)}</p>"
            f"<figure><img src='{esc(rel)}' alt='map gallery'></figure>"
        )
        md += ["## Map gallery", "", caption, "", f"![map gallery]({rel})", ""]
    if report.cost is not None:
        frame, notes = report.cost
        h += ["<h2 id='cost'>Compute cost</h2>", _frame_html(frame, "table-cost")]
        h.append("<ul class='note'>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
        md += ["## Compute cost", "", markdown_table(frame, floatfmt=".3g"), ""] + [f"- {n}" for n in notes] + [""]

    h.append("<h2 id='conventions'>Conventions</h2>")
    md += ["## Conventions", ""]
    for name, lines in report.conventions.items():
        heading = "Every table" if name == "all" else name
        h.append(f"<h3 id='conventions-{name}'>Conventions: {esc(heading)}</h3><ul class='note'>")
        h += [f"<li>{esc(line)}</li>" for line in lines]
        h.append("</ul>")
        md += [f"### Conventions: {heading}", "", *[f"- {line}" for line in lines], ""]

    # Lets a headless browser (and the tests) see how many figures decoded and whether any is cut by the page.
    h.append(
        "<script>window.addEventListener('load', () => { const imgs = [...document.images]; "
        "const width = document.documentElement.clientWidth; const b = document.body.dataset; "
        "b.imagesLoaded = imgs.filter(i => i.complete && i.naturalWidth > 0).length; "
        "b.imagesTotal = imgs.length; "
        "b.imagesOverflowing = imgs.filter(i => i.getBoundingClientRect().right > width + 1).length; "
        "b.imagesMinWidth = Math.min(...imgs.map(i => Math.round(i.getBoundingClientRect().width))); });"
        "</script>"
    )
    h.append("</body></html>")
    html_path, md_path = out_dir / "report.html", out_dir / "report.md"
    html_path.write_text("\n".join(h))
    md_path.write_text("\n".join(md) + "\n")
    return html_path, md_path
