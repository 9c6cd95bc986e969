"""What a scaling sweep's grid left out, and why, from the configuration its parent run recorded.

The parent's params are the flattened sweep config (``dims = "128,256,…"``, ``methods``,
``max_dim.<method>``). A method's ``max_dim`` cap removes the larger D before the sweep starts (no child run
records them); a per-step budget skips the rest of a curve while it runs (child runs with status
``skipped_over_budget`` and the reason, listed with the other problem trials).
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from analysis.loading import SweepInfo
from analysis.schema import STATUS_SKIPPED, TAG_STATUS, TAG_STATUS_REASON, TAG_SWEEP


def _ints(text: str) -> list[int]:
    try:
        return sorted({int(float(x)) for x in str(text).split(",") if x.strip()})
    except ValueError:
        return []


def dims_text(dims: list[int]) -> str:
    """``128…4096 (6 D)``, or the values when there are at most three."""
    if len(dims) <= 3:
        return ", ".join(map(str, dims))
    return f"{dims[0]}…{dims[-1]} ({len(dims)} D)"


def capped_lines(sweeps: Iterable[SweepInfo]) -> list[str]:
    """One line per method whose ``max_dim`` cut D from its sweep's grid."""
    lines: list[str] = []
    for info in sweeps:
        dims = _ints(info.params.get("dims", ""))
        methods = [m for m in str(info.params.get("methods", "")).split(",") if m]
        for method in methods:
            cap = _ints(info.params.get(f"max_dim.{method}", ""))
            cut = [d for d in dims if cap and d > cap[0]]
            if cut:
                lines.append(
                    f"{method} ({info.name}): D = {dims_text(cut)} not run: capped at {cap[0]} by max_dim"
                )
    return lines


def skipped_lines(runs: pd.DataFrame) -> list[str]:
    """One line per curve whose larger D the per-step budget skipped."""
    if runs.empty or TAG_STATUS not in runs:
        return []
    skipped = runs[runs[TAG_STATUS] == STATUS_SKIPPED]
    lines: list[str] = []
    for (sweep, method), part in skipped.groupby([TAG_SWEEP, "method"], sort=True):
        dims = sorted({int(d) for d in part["dim"].dropna()})
        reason = str(part[TAG_STATUS_REASON].iloc[0])
        lines.append(f"{method} ({sweep}): D = {dims_text(dims)} skipped: {reason}")
    return lines
