"""The printed form of the cost-model, counted-work, prediction and speedup tables.

Their long forms (one row per curve, or per curve and D, with every interval bound in its own column) are
the CSV files under ``tables/``; here each becomes what a reader takes in: methods as rows with the cost
model's t0, a, c and both orders as columns, or D down the side and methods across, one quantity per
table, the columns that hold one value (sweep, device, depth, batch size, fitted statistic) in the caption,
and a coefficient with its 95% interval in one cell.
"""

from __future__ import annotations

import pandas as pd

from analysis.render import Table
from analysis.schema import TAG_DEVICE_NAME, TAG_SWEEP, method_sort_key
from analysis.wide_tables import by_dim, describe, lift_constants, spread

#: What identifies a curve besides its method; constant ones go to the caption, varying ones split tables.
CONFIG: tuple[str, ...] = (TAG_SWEEP, TAG_DEVICE_NAME, "depth", "batch_size")


def _groups(
    frame: pd.DataFrame, keys: tuple[str, ...] = CONFIG
) -> list[tuple[dict[str, object], pd.DataFrame]]:
    """``frame`` split by the ``keys`` that vary, each part with the labels of its group and of the
    constant keys (for its caption)."""
    present = [k for k in keys if k in frame]
    varying = [k for k in present if frame[k].nunique(dropna=False) > 1]
    constant = {k: frame[k].iloc[0] for k in present if k not in varying}
    if not varying:
        return [(constant, frame)]
    out = []
    for key, part in frame.groupby(varying, sort=True):
        labels = dict(zip(varying, key if isinstance(key, tuple) else (key,), strict=True))
        out.append(({**constant, **labels}, part))
    return out


def _by_method(frame: pd.DataFrame, column: str = "method") -> pd.DataFrame:
    """Rows in method display order (or ascending ``column`` when it holds no methods), stably."""
    named = column in ("method", "baseline")
    key = (lambda c: c.map(method_sort_key)) if named else None
    return frame.sort_values(column, key=key, kind="stable").reset_index(drop=True)


def _interval(row: pd.Series, name: str, low: str | None = None, high: str | None = None) -> str:
    return spread(row[name], row[low or f"{name}_low"], row[high or f"{name}_high"])


def _pct(value: float) -> str:
    return "–" if pd.isna(value) else f"{100 * value:.3g}%"


def cost_model(table: pd.DataFrame, orders: pd.DataFrame, title: str, unit: str, csv: str) -> list[Table]:
    """Methods as rows; the order (counted where the runs counted their work, and timed), t0, a, c with
    their intervals, the D³ share at the largest D and that D as columns; one table per configuration."""
    if table.empty:
        return []
    counted = {}
    if "order_counted" in orders:
        counted = {(r.sweep, r.device_name, r.method): r.order_counted for r in orders.itertuples()}
    out: list[Table] = []
    for labels, part in _groups(table):
        rows = []
        for _, r in _by_method(part).iterrows():
            row: dict[str, object] = {"method": r["method"]}
            if counted:
                row["order (counted)"] = counted.get((r[TAG_SWEEP], r[TAG_DEVICE_NAME], r["method"]), "–")
                row["order (timed)"] = r["order"]
            else:
                row["order"] = r["order"]
            row |= {
                f"t0 ({unit})": _interval(r, "t0"),
                f"a ({unit}/D²)": _interval(r, "a"),
                f"c ({unit}/D³)": _interval(r, "c"),
                "D³ share at max D": f"{_pct(r['d3_share_at_max'])} [{_pct(r['d3_share_low'])}, "
                f"{_pct(r['d3_share_high'])}]",
                "max D": r["max_dim"],
                "D measured": r["n_dims"],
            }
            rows.append(row)
        statistic = part["statistic"].iloc[0] if part["statistic"].nunique() == 1 else None
        caption = f"{title}: {describe(labels)}" + (f", fitted on {statistic}" if statistic else "")
        out.append((caption, pd.DataFrame(rows), csv))
    return out


def d3_share(shares: pd.DataFrame, title: str, csv: str) -> list[Table]:
    """The fitted models' D³ share c·D³ / t(D) (percent, with its interval) at each measured D."""
    if shares.empty:
        return []
    pct = shares.assign(d3_share=100 * shares["d3_share"], low=100 * shares["low"], high=100 * shares["high"])
    return [
        (f"{title}: {c}", t, csv) for c, t in by_dim(pct, "d3_share", low="low", high="high", keys=CONFIG)
    ]


def counted_work(curves: pd.DataFrame, csv: str) -> list[Table]:
    """Methods as rows: the counted order, its D³ coefficient and share, FLOPs and bytes at the largest D."""
    if curves.empty:
        return []
    columns = {
        "method": "method",
        "order_counted": "order (counted)",
        "c3": "FLOPs / D³",
        "d3_share_counted": "D³ share of FLOPs",
        "max_dim": "max D",
        "flops_at_max": "FLOPs at max D",
        "bytes_at_max": "bytes at max D",
        "n_dims": "D counted",
    }
    out: list[Table] = []
    curves = curves.assign(d3_share_counted=curves["d3_share_counted"].map(_pct))
    for labels, part in _groups(curves):
        shown = _by_method(part)[[c for c in columns if c in part]].rename(columns=columns)
        out.append((f"Counted work per step: {describe(labels)}", shown, csv))
    return out


def per_dim(
    long: pd.DataFrame, value: str, title: str, csv: str, columns: str = "method", **bounds: str
) -> list[Table]:
    """``value`` with D down the side and ``columns`` across (methods, or a speedup's baselines)."""
    if long.empty:
        return []
    return [(f"{title}: {c}", t, csv) for c, t in by_dim(long, value, columns=columns, keys=CONFIG, **bounds)]


def per_row(
    frame: pd.DataFrame,
    columns: dict[str, str],
    title: str,
    csv: str,
    sort: str = "method",
    lift: bool = True,
) -> list[Table]:
    """``frame``'s ``columns`` (renamed), its rows in method order, the curve configuration and (``lift``)
    any other column with one value on every row in the caption."""
    if frame.empty:
        return []
    out: list[Table] = []
    for labels, part in _groups(frame):
        names = [c for c in columns if c in part and c not in labels]  # the configuration: in the caption
        shown = _by_method(part, sort)[names].rename(columns=columns)
        keep = (columns.get(sort, sort),) if lift else tuple(shown.columns)
        shown, constant = lift_constants(shown, keep=keep)
        caption = describe({**labels, **constant})
        out.append((f"{title}: {caption}" if caption else title, shown, csv))
    return out


def predicted_crossover(cross: pd.DataFrame, csv: str) -> list[Table]:
    """Per baseline: the predicted crossover D with its interval (0: relative faster at every D; ∞: never)."""
    if cross.empty:
        return []
    frame = cross.assign(
        **{
            "crossover D": [
                _interval(r, "crossover_pred_dim", "crossover_pred_low", "crossover_pred_high")
                for _, r in cross.iterrows()
            ]
        }
    )
    return per_row(
        frame,
        {"baseline": "baseline", "crossover D": "crossover D [95%]"},
        "Predicted crossover D per baseline",
        csv,
        sort="baseline",
    )


def predicted_vs_measured(holdout: pd.DataFrame, csv: str) -> list[Table]:
    """Per method: the model fitted on the smaller D against the measurement at the held-out D."""
    if holdout.empty:
        return []
    frame = holdout.assign(
        predicted=[_interval(r, "t_pred_s", "t_low_s", "t_high_s") for _, r in holdout.iterrows()]
    )
    columns = {
        "method": "method",
        "dim": "D",
        "fitted_on": "fitted on",
        "predicted": "predicted (s)",
        "t_measured_s": "measured (s)",
        "measured_over_pred": "measured / predicted",
        "inside_interval": "inside",
        "note": "note",
    }
    return per_row(frame, columns, "Predicted vs measured", csv)
