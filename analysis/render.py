"""Sections of the report → self-contained HTML and Markdown.

A :class:`Section` holds paragraphs, tables and figures; both renderers walk the same list, so
the HTML and the Markdown always say the same thing. Images go into the HTML as base64 data URIs.
Numbers are shown to 3 significant figures. A table larger than :data:`MAX_ROWS` × :data:`MAX_COLUMNS`
is not printed: its CSV under ``tables/`` (full precision) is linked instead, so that the page stays a
page a reader can take in.
"""

from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

#: The largest table printed in the report; larger ones are linked CSV files.
MAX_ROWS = 12
MAX_COLUMNS = 10
#: A table: ``(caption, frame)`` or ``(caption, frame, csv_name)``, the name of its CSV under ``tables/``
#: (the full long table when the frame shown is its summary, or the frame itself).
Table = tuple[str, pd.DataFrame] | tuple[str, pd.DataFrame, str]


@dataclass
class Section:
    """One titled part of the report."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[tuple[str, Path]] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)  # shown as a list after the paragraphs
    notes: list[str] = field(default_factory=list)  # footnotes, shown after the tables


def sig3(value: float) -> str:
    """``value`` to 3 significant figures: plain notation from 0.001 to 999 999 (``1220``, ``0.0123``),
    scientific outside it (``1.7e-12``)."""
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if value == 0 or math.isnan(value):
        return f"{value:g}"
    exponent = math.floor(math.log10(abs(value)))
    if -3 <= exponent < 6:
        decimals = 2 - exponent  # negative: round to tens, hundreds, ...
        return f"{round(value, decimals):.{max(decimals, 0)}f}"
    return f"{value:.2e}".replace("e+0", "e+").replace("e-0", "e-")


def _cell(value: object) -> str:
    if value is None or value is pd.NA:
        return "–"
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "–"
        if float(value).is_integer() and 1 <= abs(value) < 1e6:
            return str(int(value))  # a count or a D that pandas stored as a float: not 3 s.f. of it
        return sig3(float(value))
    return str(value)


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as short text: numbers to 3 significant figures, missing values as a dash."""
    return pd.DataFrame(
        {col: [_cell(v) for v in frame[col].tolist()] for col in frame.columns},
        index=range(len(frame)),
    )


def fits(frame: pd.DataFrame) -> bool:
    """Whether ``frame`` is small enough to print (at most MAX_ROWS rows and MAX_COLUMNS columns)."""
    return len(frame) <= MAX_ROWS and len(frame.columns) <= MAX_COLUMNS


def _unpack(table: Table) -> tuple[str, pd.DataFrame, str | None]:
    caption, frame, *rest = table
    return caption, frame, (rest[0] if rest else None)


def _too_large(frame: pd.DataFrame) -> str:
    return f"{len(frame)} rows × {len(frame.columns)} columns"


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


def _shown(frame: pd.DataFrame, csv: str | None) -> tuple[pd.DataFrame | None, str | None]:
    """What to print of a table, and the note beside it: the frame when it fits; a link to its CSV when it
    does not; its top-left corner, said so, when it neither fits nor has a CSV."""
    if fits(frame):
        return frame, None
    if csv is not None:
        return None, f"{_too_large(frame)}: tables/{csv}.csv"
    corner = frame.iloc[:MAX_ROWS, :MAX_COLUMNS]
    return corner, f"first {len(corner)} rows and {len(corner.columns)} columns of {_too_large(frame)}"


def render_markdown(title: str, sections: list[Section]) -> str:
    """The report as Markdown; figures referenced by their relative path, long tables by their CSV."""
    lines = [f"# {title}", ""]
    lines += [f"{i}. [{s.title}](#{_anchor(i, s.title)})" for i, s in enumerate(sections, 1)] + [""]
    for i, section in enumerate(sections, 1):
        lines += [f'<a id="{_anchor(i, section.title)}"></a>', "", f"## {section.title}", ""]
        for para in section.paragraphs:
            lines += [para, ""]
        if section.bullets:
            lines += [*(f"- {item}" for item in section.bullets), ""]
        for caption, path in section.figures:
            lines += [f"![{caption}](figures/{path.name})", "", f"*{caption}*", ""]
        for table in section.tables:
            caption, frame, csv = _unpack(table)
            shown, note = _shown(frame, csv)
            link = f" ([csv](tables/{csv}.csv))" if csv is not None else ""
            lines += [f"**{caption}**{link}", ""]
            if note is not None:
                lines += [f"_{note}_", ""]
            if shown is not None:
                lines += [markdown_table(shown), ""]
        lines += [*(f"<sup>{i}</sup> {n}" for i, n in enumerate(section.notes, 1))]
        if section.notes:
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #0072B2; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
nav.toc { font-size: 0.9em; } nav.toc ol { columns: 2; margin: 0; }
table { border-collapse: collapse; font-size: 0.85em; margin: .5em 0 1.5em; display: block;
        max-width: 100%; overflow-x: auto; }  /* the page never grows wider than the window */
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f0f4f8; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; }
figcaption, .caption, .note { font-size: 0.9em; color: #444; font-style: italic; }
"""


def _anchor(index: int, title: str) -> str:
    """A unique id per section: its number and its title, slugged."""
    return f"s{index}-" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _html_table(table: Table) -> list[str]:
    caption, frame, csv = _unpack(table)
    link = f' <a href="tables/{html.escape(csv)}.csv">csv</a>' if csv is not None else ""
    parts = [f'<p class="caption">{html.escape(caption)}{link}</p>']
    shown, note = _shown(frame, csv)
    if note is not None:
        parts.append(f'<p class="note">{html.escape(note)}</p>')
    if shown is not None:
        table_html = display_frame(shown).to_html(index=False, border=0, escape=True)
        parts.append(table_html if len(shown) else "<p><em>(empty)</em></p>")
    return parts


def render_html(title: str, sections: list[Section]) -> str:
    """The report as one HTML file with embedded images, a table of contents, and no external references
    but the linked CSV files next to it."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        '<nav class="toc"><ol>'
        + "".join(
            f'<li><a href="#{_anchor(i, s.title)}">{html.escape(s.title)}</a></li>'
            for i, s in enumerate(sections, 1)
        )
        + "</ol></nav>",
    ]
    for i, section in enumerate(sections, 1):
        parts.append(f'<h2 id="{_anchor(i, section.title)}">{html.escape(section.title)}</h2>')
        parts += [f"<p>{html.escape(p)}</p>" for p in section.paragraphs]
        if section.bullets:
            parts.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in section.bullets) + "</ul>")
        for caption, path in section.figures:
            parts.append(
                f'<figure><img alt="{html.escape(caption)}" src="{_data_uri(path)}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
        for table in section.tables:
            parts += _html_table(table)
        if section.notes:
            parts.append(
                '<ol class="note">' + "".join(f"<li>{html.escape(n)}</li>" for n in section.notes) + "</ol>"
            )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
