"""The counted order beside the timed one: the verdict columns, the headline's words and the report section.

The **headline order** of a method is its counted order (:mod:`analysis.counted`) wherever its runs logged
counted work and it could be fitted, else its timed order (:mod:`analysis.cost_model`). When the two
disagree the headline says so in one line, with the evidence from the clock: the achieved GFLOP/s at each D.
A timed "cubic" over a count without D³ work is a **hardware regime change** (the step's working set leaves a
cache, or the machine's rate changes with size), not a D³ term; a counted cubic that timings call quadratic
has D³ work still too small to show on that grid.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from analysis import cost_display, counted
from analysis.builder import Builder
from analysis.cost_figures import plot_achieved_rate
from analysis.cost_model import ORDER_CUBIC, ORDER_NOT_FITTED, ORDER_QUADRATIC
from analysis.render import Section
from analysis.schema import FIT_GROUP, REFERENCE_METHOD, TAG_MATMUL_PEAK_SIZE, TAG_SWEEP, TAG_UNCOUNTED_OPS

METHOD_GROUP = list(counted.METHOD_GROUP)


def _note(order_counted: str, order_timed: str) -> str:
    if order_counted == ORDER_QUADRATIC and order_timed == ORDER_CUBIC:
        return counted.REGIME_CHANGE
    if order_counted == ORDER_CUBIC and order_timed == ORDER_QUADRATIC:
        return counted.HIDDEN_D3
    return ""


def combine(
    orders: pd.DataFrame, table: pd.DataFrame, curves: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The per-method orders with ``order`` (headline), ``order_counted``, ``order_timed`` and ``order_note``;
    the per-curve cost table with ``order_counted`` and ``timed_note`` ("hardware regime change", …).

    ``orders``/``table``: :func:`analysis.cost_tables.method_orders` / ``cost_table`` (their ``order`` is
    the timed one); ``curves``: :func:`analysis.counted.counted_table`.
    """
    per_method = counted.counted_orders(curves)
    out = orders.rename(columns={"order": "order_timed"})
    out = out.merge(per_method, on=METHOD_GROUP, how="left")
    out["order_counted"] = out["order_counted"].fillna("")
    fitted = out["order_counted"].isin([ORDER_CUBIC, ORDER_QUADRATIC])
    out["order"] = np.where(fitted, out["order_counted"], out["order_timed"])
    out["order_note"] = [_note(c, t) for c, t in zip(out["order_counted"], out["order_timed"], strict=True)]
    front = [*METHOD_GROUP, "order", "order_counted", "order_timed", "order_note"]
    out = out[front + [c for c in out.columns if c not in front]]
    side = curves[[*FIT_GROUP, "order_counted"]]
    curve_table = table.merge(side, on=list(FIT_GROUP), how="left")
    curve_table["order_counted"] = curve_table["order_counted"].fillna("")
    curve_table["timed_note"] = [
        _note(c, t) for c, t in zip(curve_table["order_counted"], curve_table["order"], strict=True)
    ]
    return out, curve_table


def _curve_rates(rates: pd.DataFrame, row: object) -> pd.DataFrame:
    keys = {k: getattr(row, k) for k in (*METHOD_GROUP, "depth", "batch_size") if hasattr(row, k)}
    mask = np.logical_and.reduce([rates[k] == v for k, v in keys.items()]) if len(rates) else []
    return rates[mask].sort_values("dim") if len(rates) else rates


def _rate_evidence(curve: pd.DataFrame) -> str:
    """``61 → 38 GFLOP/s from D ≈ 1024 to 2048``: the achieved rate from its best D to the largest."""
    curve = curve[np.isfinite(curve["gflops"])]
    if curve.empty:
        return ""
    best = curve.loc[curve["gflops"].idxmax()]
    last = curve.iloc[-1]
    if int(best["dim"]) == int(last["dim"]):
        shown = ", ".join(f"{r.gflops:.3g}" for r in curve.itertuples())
        return f"achieved {shown} GFLOP/s at D = {', '.join(str(int(d)) for d in curve['dim'])}"
    rates = f"{best['gflops']:.3g} → {last['gflops']:.3g} GFLOP/s"
    return f"from D ≈ {int(best['dim'])} ({rates} at D = {int(last['dim'])})"


def _counted_words(row: object) -> str:
    share = float(getattr(row, "d3_share_counted", np.nan))
    top = getattr(row, "counted_max_dim", np.nan)
    if row.order_counted == ORDER_CUBIC:  # type: ignore[attr-defined]
        return f"D³ work {share:.0%} of the counted FLOPs at D = {int(top)}"
    return "no D³ work in the count"


def headline_line(name: str, row: object, rates: pd.DataFrame, timed_text: str) -> str:
    """A method's headline line: the counted order first, the timed one beside it with the evidence.

    ``row``: a row of the combined orders (:func:`combine`), or of the timed ones alone (older runs);
    ``timed_text``: the cost model's evidence ("c = … s/D³ […], 40% of the step at D = …", or why not fitted).
    """
    timed = str(getattr(row, "order_timed", getattr(row, "order", "")))
    counted_order = str(getattr(row, "order_counted", ""))
    if counted_order not in (ORDER_CUBIC, ORDER_QUADRATIC):
        why = str(getattr(row, "counted_reason", "") or "")
        tail = f" (counted work not fitted: {why})" if counted_order == ORDER_NOT_FITTED and why else ""
        return f"{name}: {timed} — {timed_text}{tail}"
    head = f"{name}: {counted_order} ({_counted_words(row)})"
    if timed == ORDER_NOT_FITTED:
        return f"{head}; timed: not fitted — {timed_text}"
    note = _note(counted_order, timed)
    if note == counted.REGIME_CHANGE:
        evidence = _rate_evidence(_curve_rates(rates, row))
        grows = f"timings grow faster than the counted work {evidence}" if evidence else timed_text
        return f"{head}; timed cubic: {grows} — a {counted.REGIME_CHANGE}, not a D³ term"
    if note == counted.HIDDEN_D3:
        hidden = "the D³ work does not show in the timings on this grid"
        return f"{head}; timed quadratic: {hidden} — {timed_text}"
    return f"{head}; timed {timed} — {timed_text}"


def peak_lines(rates: pd.DataFrame, sweeps: Mapping[str, Mapping[str, str]] | None = None) -> list[str]:
    """Per sweep: the rate the reference method reaches at its largest D, as a share of the measured peak."""
    lines: list[str] = []
    ref = rates[rates["method"] == REFERENCE_METHOD] if len(rates) else rates
    several = ref[TAG_SWEEP].nunique() > 1 if len(ref) else False
    for sweep, part in ref.groupby(TAG_SWEEP, sort=True):
        top = part.sort_values(["dim", "batch_size", "depth"]).iloc[-1]
        where = f" ({sweep})" if several else ""
        text = f"{REFERENCE_METHOD}{where} reaches {top['gflops']:.3g} GFLOP/s at D = {int(top['dim'])}"
        peak = float(top["peak_gflops"])
        if np.isfinite(peak):
            tags = (sweeps or {}).get(str(sweep), {})
            size = tags.get(TAG_MATMUL_PEAK_SIZE)
            how = f", a {size}² GEMM" if size else ""
            share = f"{top['pct_of_peak']:.0f}% of the measured matrix-multiply peak"
            lines.append(f"{text}: {share} ({peak:.3g} GFLOP/s{how})")
        else:
            lines.append(f"{text} (no matrix-multiply peak was measured for this sweep)")
    return lines


def section(b: Builder, curves: pd.DataFrame, rates: pd.DataFrame, orders: pd.DataFrame) -> Section:
    """The "Counted work" section: the counted order per curve, achieved GFLOP/s per D and its figure."""
    title = "Counted work and achieved rate"
    if curves.empty:
        return Section(title, ["These runs did not log counted work (flops_per_step): they predate it."])
    b.table("counted_work", curves)
    b.table("achieved_rate", rates)
    paras = [
        "Each trial counts one training step at its D, batch size and depth without a clock: the FLOPs "
        "of its matrix products and linear algebra (torch's FLOP counter, plus LU ⅔·n³, inverse 2·n³, "
        "triangular solves n²·k …), the part that grows as D³ (decompositions, inverses, D×D×D products), "
        "and the bytes its operations read and write (an upper bound on memory traffic). At a fixed batch "
        "size the count is a "
        f"polynomial in D of degree ≤ 3: {counted.COUNTED_MIN_DIMS} distinct D determine it exactly and each "
        "further D confirms it. The counted order is cubic when its D³ coefficient is non-zero, quadratic "
        "otherwise; it is the headline's order. The timed order (cost model on step times) stays beside it; "
        f"where they disagree the curve is flagged ('{counted.REGIME_CHANGE}': timings grow faster than the "
        "work, e.g. as the working set leaves a cache).",
        "Achieved rate = counted FLOPs / fastest step time; % of peak against the sweep's measured "
        "matrix-multiply peak (a large GEMM on a trial's device, dtype and threads).",
    ]
    uncounted = (
        orders[orders.get(TAG_UNCOUNTED_OPS, pd.Series(dtype=str)).fillna("") != ""]
        if len(orders)
        else orders
    )
    if len(uncounted):
        paras.append(
            "Operations the counter cannot count (their work is missing from the FLOPs): "
            + "; ".join(f"{r.method}: {r.uncounted_ops}" for r in uncounted.itertuples())
            + "."
        )
    else:
        paras.append(
            "Every operation of every counted step is a counted product or decomposition, elementwise, "
            "or a view."
        )
    tables = cost_display.counted_work(curves, "counted_work")
    figures = []
    if len(rates) and rates["gflops"].notna().any():
        tables += cost_display.per_dim(rates, "gflops", "Achieved GFLOP/s", "achieved_rate")
        figure = b.figure(plot_achieved_rate(rates, b.ctx, b.out_dir / "figures"))
        figures.append(
            (
                "Achieved GFLOP/s against D per method; dashed: the measured matrix-multiply peak; circled "
                "hollow: a timing flagged as disturbed (see Timing quality).",
                figure,
            )
        )
    return Section(title, paras, tables, figures)
