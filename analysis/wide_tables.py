"""Tables a reader can take in: one quantity per table, D down the side, methods across, constants in the
caption.

The long tables (one row per trial or per curve and D) stay as CSV files under ``tables/``; what the report
prints is their pivot. A column whose value is the same on every row (the sweep, the device, the depth of a
one-depth sweep) says nothing per row: it is lifted into the caption. Where several seeds share a cell, the
cell reads ``median [min, max]``; with one seed, the value alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from analysis.render import sig3
from analysis.schema import TAG_DEVICE_NAME, TAG_SWEEP, method_sort_key

#: Columns that identify a curve besides D and method; those constant over a table go to its caption.
CURVE_KEYS: tuple[str, ...] = (TAG_SWEEP, TAG_DEVICE_NAME, "dataset", "depth", "batch_size")
_LABELS = {"batch_size": "batch", "dataset": "data", TAG_DEVICE_NAME: "device"}


def describe(values: dict[str, object]) -> str:
    """``sweep learn1, depth 2, batch 100``: the constant columns of a table, for its caption."""
    return ", ".join(f"{_LABELS.get(k, k)} {_plain(v)}" for k, v in values.items())


def _plain(value: object) -> str:
    if isinstance(value, float):
        return sig3(value) if not float(value).is_integer() else str(int(value))
    return str(value)


def lift_constants(frame: pd.DataFrame, keep: Sequence[str] = ()) -> tuple[pd.DataFrame, dict[str, object]]:
    """``frame`` without the columns (other than ``keep``) that hold one value on every row, and those
    values by column name; a column empty on every row (NaN, None, "") is dropped and not named."""
    if frame.empty:
        return frame, {}
    lifted = [c for c in frame.columns if c not in keep and frame[c].nunique(dropna=False) == 1]
    constant = {c: frame[c].iloc[0] for c in lifted if not _empty(frame[c].iloc[0])}
    return frame.drop(columns=lifted), constant


def _empty(value: object) -> bool:
    """Missing in any of pandas' spellings (None, NaN, pd.NA, NaT) or an empty string."""
    if isinstance(value, str):
        return value == ""
    missing = pd.isna(value)
    return bool(missing) if isinstance(missing, bool) else False


def spread(median: float, low: float, high: float, n: int = 2) -> str:
    """``median [min, max]`` over several seeds (or a value and its interval: ``n`` left at 2), the value
    alone for one seed or without bounds; a dash when missing."""
    if median is None or math.isnan(float(median)):
        return "–"
    if n > 1 and low is not None and high is not None and not (math.isnan(low) or math.isnan(high)):
        return f"{sig3(median)} [{sig3(low)}, {sig3(high)}]"
    return sig3(median)


def by_dim(
    long: pd.DataFrame,
    value: str,
    *,
    low: str | None = None,
    high: str | None = None,
    n: str | None = None,
    columns: str = "method",
    keys: Sequence[str] = CURVE_KEYS,
) -> list[tuple[str, pd.DataFrame]]:
    """``long`` (one row per curve and D) pivoted to D × ``columns`` tables of ``value``, one per curve
    configuration (the ``keys`` that vary), each with the caption naming its configuration and the
    constants. With ``low``/``high`` the cells read ``value [low, high]``: always (an interval), or with
    ``n`` only where ``n`` > 1 (a median over seeds and their range)."""
    if long.empty:
        return []
    present = [k for k in keys if k in long]
    varying = [k for k in present if long[k].nunique(dropna=False) > 1]
    constant = {k: long[k].iloc[0] for k in present if k not in varying}
    groups = long.groupby(varying, sort=True) if varying else [((), long)]
    out: list[tuple[str, pd.DataFrame]] = []
    for key, part in groups:
        labels = dict(zip(varying, key if isinstance(key, tuple) else (key,), strict=True))
        cell = part.apply(
            lambda r: (
                spread(r[value], r[low], r[high], int(r[n]) if n is not None else 2)
                if low is not None and high is not None
                else r[value]
            ),
            axis=1,
        )
        wide = part.assign(_cell=cell).pivot_table(
            index="dim", columns=columns, values="_cell", aggfunc="first"
        )
        ordered = sorted(wide.columns, key=lambda m: method_sort_key(str(m)))
        wide = wide[ordered].reset_index().rename(columns={"dim": "D"})
        wide.columns.name = None
        out.append((describe({**constant, **labels}), wide))
    return out
