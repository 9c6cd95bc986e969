"""What every benchmark records beside its numbers (the machine, the software, the date, the command: see
:func:`relgrad_core.machine.machine_info`), how it writes them, and its markdown tables."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from analysis.render import markdown_table as _frame_table
from relgrad_core.machine import cpu_model, git_commit, machine_info

__all__ = ["cpu_model", "git_commit", "machine_info", "markdown_table", "write_json"]


def write_json(path: str | Path, payload: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A GitHub-flavoured markdown table of ``rows`` under ``header``, rendered by the report's own
    :func:`analysis.render.markdown_table` (floats to 4 significant digits, missing values as a dash)."""
    return _frame_table(pd.DataFrame(rows, columns=header))
