"""What a report is assembled into: sections, figures and tables written under ``out_dir``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis.figures import FigureContext
from analysis.render import Section
from analysis.schema import method_sort_key


@dataclass
class Builder:
    """Collects sections, figures, tables and headline lines while the report is assembled."""

    out_dir: Path
    ctx: FigureContext
    sections: list[Section] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    tables: dict[str, Path] = field(default_factory=dict)
    headline: list[str] = field(default_factory=list)
    headline_figure: Path | None = None
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)  # the tables written, by name

    def table(self, name: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Write ``tables/<name>.csv`` at full precision and return the frame."""
        path = self.out_dir / "tables" / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
        self.tables[name] = path
        self.frames[name] = frame
        return frame

    def figure(self, paths: list[Path]) -> Path:
        """Record a figure's files (PNG first) and return the PNG."""
        self.figures.extend(paths)
        return paths[0]


def method_key(column: pd.Series) -> pd.Series:
    """Sort key for DataFrame.sort_values: methods in display order, other columns as they are."""
    if column.name in ("method", "baseline"):
        return column.map(method_sort_key)
    return column


def sort_methods(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """``frame`` sorted by ``by`` with methods in display order (unknown methods after, by name)."""
    return frame.sort_values(by, key=method_key, kind="stable") if len(frame) else frame
