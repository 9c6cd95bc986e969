"""Sections of the report → self-contained HTML and Markdown.

A :class:`Section` holds paragraphs, tables and figures; both renderers walk the same list, so
the HTML and the Markdown always say the same thing. Images go into the HTML as base64 data URIs.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class Section:
    """One titled part of the report."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: list[tuple[str, Path]] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)  # shown as a list after the paragraphs


def _cell(value: object) -> str:
    if value is None or value is pd.NA:
        return "–"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.4g}"
    return str(value)


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as short text: floats to 4 significant digits, missing values as a dash."""
    return pd.DataFrame(
        {col: [_cell(v) for v in frame[col].tolist()] for col in frame.columns},
        index=range(len(frame)),
    )


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no `tabulate` dependency)."""
    shown = display_frame(frame)
    if shown.empty:
        return "_(empty)_"
    header = "| " + " | ".join(str(c) for c in shown.columns) + " |"
    rule = "|" + "|".join("---" for _ in shown.columns) + "|"
    body = [
        "| " + " | ".join(v.replace("|", "\\|") for v in row) + " |"
        for row in shown.itertuples(index=False, name=None)
    ]
    return "\n".join([header, rule, *body])


def render_markdown(title: str, sections: list[Section]) -> str:
    """The report as Markdown; figures referenced by their relative path."""
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for para in section.paragraphs:
            lines += [para, ""]
        if section.bullets:
            lines += [*(f"- {item}" for item in section.bullets), ""]
        for caption, path in section.figures:
            lines += [f"![{caption}](figures/{path.name})", "", f"*{caption}*", ""]
        for caption, frame in section.tables:
            lines += [f"**{caption}**", "", markdown_table(frame), ""]
    return "\n".join(lines).rstrip() + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #0072B2; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.85em; margin: .5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f0f4f8; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; }
figcaption, .caption { font-size: 0.9em; color: #444; font-style: italic; }
"""


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_html(title: str, sections: list[Section]) -> str:
    """The report as one HTML file with embedded images and no external references."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts += [f"<p>{html.escape(p)}</p>" for p in section.paragraphs]
        if section.bullets:
            parts.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in section.bullets) + "</ul>")
        for caption, path in section.figures:
            parts.append(
                f'<figure><img alt="{html.escape(caption)}" src="{_data_uri(path)}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
        for caption, frame in section.tables:
            parts.append(f'<p class="caption">{html.escape(caption)}</p>')
            table = display_frame(frame).to_html(index=False, border=0, escape=True)
            parts.append(table if len(frame) else "<p><em>(empty)</em></p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
