"""Tables a reader can take in: 3 significant figures, long tables linked as CSV, constants in the caption,
D down the side and methods across, a table of contents."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from analysis import wide_tables
from analysis.render import MAX_COLUMNS, MAX_ROWS, Section, render_html, render_markdown, sig3


@pytest.mark.parametrize(
    ("value", "text"),
    [(1218.79, "1220"), (-1218.79, "-1220"), (12.345, "12.3"), (0.012345, "0.0123"), (1.7e-12, "1.70e-12")],
)
def test_three_significant_figures(value: float, text: str) -> None:
    assert sig3(value) == text


def _html_tables(html: str) -> list[str]:
    return re.findall(r"<table.*?</table>", html, flags=re.S)


def test_a_long_or_wide_table_is_linked_not_printed() -> None:
    long = pd.DataFrame({"x": np.arange(MAX_ROWS + 1, dtype=float)})
    wide = pd.DataFrame([np.arange(MAX_COLUMNS + 1)], columns=[f"c{i}" for i in range(MAX_COLUMNS + 1)])
    small = pd.DataFrame({"D": [16, 32], "relative": [1.23456, 2.0]})
    section = Section(
        "Results", tables=[("long", long, "long_csv"), ("wide", wide, "wide_csv"), ("small", small)]
    )
    html = render_html("t", [section])
    tables = _html_tables(html)
    assert len(tables) == 1 and "1.23" in tables[0] and "1.2346" not in tables[0]
    assert 'href="tables/long_csv.csv"' in html and 'href="tables/wide_csv.csv"' in html
    assert f"{MAX_ROWS + 1} rows × 1 columns: tables/long_csv.csv" in html
    md = render_markdown("t", [section])
    assert "(tables/long_csv.csv)" in md and md.count("| --- |") == 0 and md.count("|---|") == 1


def test_a_large_table_without_a_csv_shows_its_corner_and_says_so() -> None:
    frame = pd.DataFrame(np.ones((20, 14)), columns=[f"c{i}" for i in range(14)])
    html = render_html("t", [Section("S", tables=[("big", frame)])])
    (table,) = _html_tables(html)
    assert table.count("<tr") == MAX_ROWS + 1  # header + 12 rows
    assert table.count("<th>") == MAX_COLUMNS
    assert "first 12 rows and 10 columns of 20 rows × 14 columns" in html


def test_html_has_a_table_of_contents_linking_every_section() -> None:
    html = render_html("t", [Section("Headline"), Section("Learning: a, b")])
    for anchor in ("s1-headline", "s2-learning-a-b"):
        assert f'href="#{anchor}"' in html and f'id="{anchor}"' in html


def test_by_dim_puts_d_down_the_side_methods_across_and_constants_in_the_caption() -> None:
    long = pd.DataFrame(
        {
            "sweep": "s",
            "dataset": "teacher",
            "depth": 2,
            "batch_size": 100,
            "dim": [64, 64, 16, 16],
            "method": ["ordinary", "relative", "ordinary", "relative"],
            "v": [2.0, 1.0, 0.5, 0.25],
            "lo": [1.5, 0.9, 0.4, 0.2],
            "hi": [2.5, 1.1, 0.6, 0.3],
            "n": [3, 3, 1, 1],
        }
    )
    ((caption, table),) = wide_tables.by_dim(long, "v", low="lo", high="hi", n="n")
    assert caption == "sweep s, data teacher, depth 2, batch 100"
    assert list(table.columns) == ["D", "relative", "ordinary"]  # display order, not alphabetical
    assert table["D"].tolist() == [16, 64]
    assert table.loc[1, "ordinary"] == "2.00 [1.50, 2.50]" and table.loc[0, "relative"] == "0.250"


def test_several_configurations_give_one_table_each() -> None:
    long = pd.DataFrame({"sweep": ["a", "b"], "dim": [8, 8], "method": ["relative"] * 2, "v": [1.0, 2.0]})
    tables = wide_tables.by_dim(long, "v")
    assert [c for c, _ in tables] == ["sweep a", "sweep b"]


def test_lift_constants() -> None:
    frame = pd.DataFrame({"sweep": ["s", "s"], "device": ["cpu", "cpu"], "D": [1, 2], "t": [1.0, 1.0]})
    shown, constant = wide_tables.lift_constants(frame, keep=("D", "t"))
    assert list(shown.columns) == ["D", "t"] and constant == {"sweep": "s", "device": "cpu"}


def test_a_column_empty_on_every_row_is_dropped_not_captioned() -> None:
    frame = pd.DataFrame(
        {
            "D": [1, 2],
            "crossover D": [np.nan, np.nan],
            "note": ["", ""],
            "none": [None, None],
            "nullable": pd.array([pd.NA, pd.NA], dtype="Int64"),
            "sweep": ["s", "s"],
        }
    )
    shown, constant = wide_tables.lift_constants(frame, keep=("D",))
    assert list(shown.columns) == ["D"] and constant == {"sweep": "s"}
    assert "nan" not in wide_tables.describe(constant)
