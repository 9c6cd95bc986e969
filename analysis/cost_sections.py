"""Report sections built on the cost models: runtime and memory order, predictions, timing quality."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from analysis import cost_display, cost_figures, counted, counted_report, predictions, scaling
from analysis.builder import Builder, sort_methods
from analysis.cost_model import ORDER_CUBIC, ORDER_NOT_FITTED, ORDER_QUADRATIC, order_rule
from analysis.cost_tables import (
    MEMORY_STAT,
    RUNTIME_FALLBACK,
    RUNTIME_STAT,
    STAT_LABEL,
    GroupFit,
    cost_table,
    fit_groups,
    flag_disturbed,
    method_orders,
    share_table,
)
from analysis.render import Section
from analysis.schema import (
    DISTURBED_SPREAD,
    FIT_GROUP,
    PAPER_MAX_DIM,
    PREDICT_EXTEND_FACTOR,
    REFERENCE_METHOD,
    TAG_DEVICE_NAME,
    TAG_SWEEP,
)

_KIND = {
    "runtime": ("Runtime scaling", "seconds per training step", "seconds per training step (s)", "s"),
    "memory": ("Peak memory", "peak memory", "peak memory (MB)", "MB"),
}


@dataclass
class CostResult:
    """Cost models of one quantity (runtime or memory) and the tables derived from them."""

    key: str
    groups: list[GroupFit]
    table: pd.DataFrame
    orders: pd.DataFrame
    flagged: pd.DataFrame
    predict_dims: list[int]
    extend_to: float
    #: Runtime only: the counted order per curve and the achieved rate per D (:mod:`analysis.counted`).
    counted: pd.DataFrame = field(default_factory=pd.DataFrame)
    rates: pd.DataFrame = field(default_factory=pd.DataFrame)


def analyse(
    runs: pd.DataFrame,
    key: str,
    *,
    predict_dims: Sequence[int] | None,
    min_dim: int | None,
    n_boot: int,
    seed: int,
    peaks: Mapping[str, float] | None = None,
) -> CostResult:
    """Fit every curve, flag disturbed timings (runtime only) and build the order tables.

    Runtime: the counted order (:mod:`analysis.counted`) joins the timed one, and ``order`` of the per-method
    table becomes the headline's (:func:`analysis.counted_report.combine`); ``peaks``: each sweep's measured
    matrix-multiply peak (GFLOP/s), for the achieved-rate table.
    """
    metric, fallback = (RUNTIME_STAT, RUNTIME_FALLBACK) if key == "runtime" else (MEMORY_STAT, None)
    groups = fit_groups(runs, metric, fallback=fallback, n_boot=n_boot, seed=seed)
    flagged = flag_disturbed(groups, runs) if key == "runtime" else flag_disturbed([], runs)
    slope_metric = RUNTIME_FALLBACK if key == "runtime" else MEMORY_STAT
    slopes = scaling.fit_table(runs, slope_metric, min_dim=min_dim, n_boot=n_boot, seed=seed)
    table = cost_table(groups, slopes, n_boot=n_boot, seed=seed)
    orders = method_orders(table)
    curves, rates = pd.DataFrame(), pd.DataFrame()
    if key == "runtime":
        curves = counted.counted_table(runs)
        rates = counted.mark_disturbed(counted.rate_table(runs, peaks), flagged)
        orders, table = counted_report.combine(orders, table, curves)
        _accept_counted_orders(groups, curves)
    old = scaling.method_verdicts(slopes).rename(
        columns={"k_median": "slope_k", "ci_low": "slope_low", "ci_high": "slope_high"}
    )
    old = old.rename(columns={"verdict": "slope_verdict"}).drop(columns=["n_groups"])
    orders = orders.merge(old, on=[TAG_SWEEP, TAG_DEVICE_NAME, "method"], how="left")
    orders = sort_methods(orders, [TAG_SWEEP, TAG_DEVICE_NAME, "method"]).reset_index(drop=True)
    table = sort_methods(table, [*FIT_GROUP]).reset_index(drop=True)
    max_dim = float(max((g.dims.max() for g in groups if len(g.dims)), default=0.0))
    dims = list(predict_dims) if predict_dims else predictions.default_predict_dims(max_dim)
    return CostResult(key, groups, table, orders, flagged, dims, float(max([*dims, max_dim])), curves, rates)


def _accept_counted_orders(groups: list[GroupFit], curves: pd.DataFrame) -> None:
    """Figures and predictions draw the model of the headline's order: where a curve's work was counted,
    its counted order replaces the timed one as the accepted model (:attr:`CostFit.model_order`)."""
    if curves.empty or "order_counted" not in curves:
        return
    counted_orders = {
        tuple(row[k] for k in FIT_GROUP): row["order_counted"]
        for _, row in curves.iterrows()
        if row["order_counted"] in (ORDER_CUBIC, ORDER_QUADRATIC)
    }
    for g in groups:
        order = counted_orders.get(tuple(g.labels[k] for k in FIT_GROUP))
        if g.fit is not None and order is not None:
            g.fit = replace(g.fit, model_order=order)


def _fmt(value: float, digits: int = 2) -> str:
    if not np.isfinite(value):
        return "∞" if value > 0 else "–"
    return f"{value:.{digits}g}" if value != 0 else "0"


def _dim(value: float) -> str:
    return "∞" if value == float("inf") else f"{value:.0f}"


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%" if np.isfinite(value) else "–"


def cost_section(b: Builder, res: CostResult, runs: pd.DataFrame) -> Section:
    """The order of each method's runtime or memory, the coefficients and the main figure."""
    title, label, ylabel, unit = _KIND[res.key]
    if not res.groups:
        return Section(title, [f"No {label} was recorded, so nothing to fit."])
    b.table(f"cost_model_{res.key}", res.table)
    b.table(f"verdicts_{res.key}", res.orders)
    shares = b.table(f"d3_share_{res.key}", share_table(res.groups))
    slopes = res.table[[*FIT_GROUP, "slope", "slope_low", "slope_high", "slope_range"]]
    b.table(f"exponents_{res.key}", slopes)
    figure = b.figure(
        cost_figures.plot_cost_model(
            res.groups,
            b.ctx,
            b.out_dir / "figures",
            name=f"{res.key}_vs_dim",
            ylabel=ylabel,
            title=f"{label.capitalize()} against D: fitted cost models and their D³ share",
            extend_to=res.extend_to,
            unit=unit,
        )
    )
    if res.key == "runtime":
        b.headline_figure = figure
    stats = sorted({g.statistic for g in res.groups})
    paras = [
        f"Per method × depth × batch size the cost model t(D) = t0 + a·D² + c·D³ ({unit}) is fitted with "
        "non-negative coefficients on relative error over every measured D: t0 absorbs the fixed per-step "
        "overhead, a·D² the O(B·D²) matrix products of every method, c·D³ the O(D³) inverse / log-det "
        "work of the exact gradients (O(B·D³) for jacobian, cubic at a fixed B). Intervals: 95% residual "
        "bootstrap. D³ share = c·D³ / t(D); half-D = the D from which c·D³ exceeds t0 + a·D² (∞ when c = 0).",
        f"Order: {order_rule()}. Per method the order is cubic when any of its curves is.",
        "Fitted statistic: "
        + "; ".join(STAT_LABEL.get(s, s) + f" ({s})" for s in stats)
        + "."
        + (
            " Some curves lack sec_per_iter_min (older runs) and fall back to the median."
            if RUNTIME_STAT in stats and RUNTIME_FALLBACK in stats
            else ""
        ),
        "The local log-log slope (tables/exponents_*.csv) is kept as a secondary number: it depends on the "
        "range it is taken over (its slope_range column) and is flattened by overhead and B·D² terms. "
        "Per method the order, counted and timed, is in tables/verdicts_*.csv with its evidence.",
    ]
    not_fitted = res.table[res.table["reason"] != ""]
    paras += [
        f"{r.method} (depth {r.depth}, batch {r.batch_size}): not fitted — {r.reason}."
        for r in not_fitted.itertuples()
    ]
    model = f"{title}: cost model t0 + a·D² + c·D³ per method"
    tables = cost_display.cost_model(res.table, res.orders, model, unit, f"cost_model_{res.key}")
    tables += cost_display.d3_share(shares, f"{title}: D³ share c·D³ / t(D) (%)", f"d3_share_{res.key}")
    caption = (
        f"{label.capitalize()} against D (points: median over seeds, bars min–max); solid: fitted "
        "model the order accepts (t0 + a·D² + c·D³ if cubic, t0 + a·D² if quadratic; the counted order "
        "where the trials counted their work, so a timed D³ term that is a hardware regime change is not "
        "extrapolated) over the measured D, dashed: extrapolated to the largest predicted D; "
        "grey: slope-2 / slope-3 guides through the largest measured point of "
        f"{REFERENCE_METHOD} / the first cubic method. Right: the D³ share of each fitted model."
    )
    if res.key == "runtime":  # the headline shows it; once is enough
        paras.append(f"The figure is the headline's: {caption}")
        return Section(title, paras, tables)
    return Section(title, paras, tables, [(caption, figure)])


def prediction_section(
    b: Builder, res: CostResult, predict_given: bool
) -> tuple[Section, pd.DataFrame, pd.DataFrame]:
    """Predicted step time and speedup at the requested D, the predicted crossover, and
    predicted-vs-measured where the sweep measured a predicted D (or, by default, its largest D)."""
    dims = res.predict_dims
    pred = b.table("predictions", predictions.prediction_table(res.groups, dims, REFERENCE_METHOD))
    cross = predictions.crossover_predictions(res.groups, REFERENCE_METHOD)
    b.table("crossover_predicted", cross)
    holdout = predictions.holdout_table(res.groups, dims if predict_given else None, n_boot=200, seed=0)
    b.table("predicted_vs_measured", holdout)
    paras = [
        f"Predicted step time (s) at D = {', '.join(map(str, dims))} from each fitted cost model, with 95% "
        "bootstrap intervals, and the speedup t_method / t_relative (> 1: relative faster). "
        + (
            "Dimensions as requested."
            if predict_given
            else f"Default: the largest measured D × {PREDICT_EXTEND_FACTOR} and the paper's largest D, "
            f"{PAPER_MAX_DIM:,}.".replace(",", " ")
        ),
        "Predicted crossover: the D from which on relative is faster for good according to the fitted "
        "models (0: at every D; ∞: never).",
        "Predicted vs measured: the model fitted on the smaller D only, against the measurement at "
        + ("each requested D the sweep measured." if predict_given else "each curve's largest measured D."),
    ]
    tables = cost_display.per_dim(
        pred, "t_pred_s", "Predicted step time (s) [95%]", "predictions", low="t_low_s", high="t_high_s"
    )
    tables += cost_display.per_dim(
        pred[pred["method"] != REFERENCE_METHOD],
        "speedup_of_reference",
        f"Predicted speedup t_method / t_{REFERENCE_METHOD} [95%]",
        "predictions",
        low="speedup_low",
        high="speedup_high",
    )
    tables += cost_display.predicted_crossover(cross, "crossover_predicted")
    tables += cost_display.predicted_vs_measured(holdout, "predicted_vs_measured")
    return Section("Predictions", paras, tables), pred, cross


def timing_section(b: Builder, res: CostResult, runs: pd.DataFrame) -> Section:
    """Flagged timings with their effect on the order, and the machine load where it was logged."""
    flagged = b.table("flagged_timings", res.flagged)
    paras = [
        f"A timing is flagged when its spread IQR/median exceeds {DISTURBED_SPREAD:g} or when its curve is "
        "non-monotone in D (faster at a larger D; of the two points the one farther from the model "
        "fitted without it). Flagged points stay in the fit; each affected curve is refitted without them."
    ]
    if flagged.empty:
        paras.append("No timing was flagged.")
    else:
        changed = _changed_by_flags(res.table)
        paras.append(
            f"{len(flagged)} timing(s) flagged in {int((res.table['n_flagged'] > 0).sum())} curve(s). "
            + (
                "Refitted without them, no curve changes its timed order."
                if changed.empty
                else "Refitted without them, the timed order changes: "
                + "; ".join(
                    f"{r.method} (depth {r.depth}, batch {r.batch_size}): "
                    f"{r.order} → {r.order_without_flagged}"
                    for r in changed.itertuples()
                )
                + ". A curve left with too few D is not ordered; only a change between quadratic and cubic "
                "would mean the disturbed points decide the verdict."
            )
        )
    timed = runs[runs["sec_per_iter"].notna()] if "sec_per_iter" in runs else runs.iloc[0:0]
    if "load_avg_1m" in timed and timed["load_avg_1m"].notna().any():
        load = timed["load_avg_1m"].dropna()
        paras.append(
            "1-minute load average when the steps were timed: "
            f"median {load.median():.2f}, max {load.max():.2f} ({len(load)} timed trials)."
        )
    else:
        paras.append("The runs did not log the machine load (load_avg_1m).")
    if "timing_retimed" in timed and timed["timing_retimed"].notna().any():
        n = int((timed["timing_retimed"] > 0).sum())
        paras.append(f"{n} timing(s) were re-timed with more repeats after a disturbed first measurement.")
    columns = {
        "method": "method",
        "dim": "D",
        "value_s": "fitted (s)",
        "sec_per_iter": "median (s)",
        "iqr_over_median": "IQR / median",
        "load_avg_1m": "load",
        "timing_retimed": "re-timed",
        "reason": "reason",
    }
    ordered = sort_methods(flagged, [TAG_SWEEP, TAG_DEVICE_NAME, "method", "dim"])
    tables = cost_display.per_row(ordered, columns, "Flagged timings", "flagged_timings")
    return Section("Timing quality", paras, tables)


def method_lines(res: CostResult) -> list[str]:
    """One headline sentence per method: its order and the evidence."""
    lines: list[str] = []
    orders = sort_methods(res.orders, [TAG_SWEEP, TAG_DEVICE_NAME, "method"])
    several = orders[[TAG_SWEEP, TAG_DEVICE_NAME]].drop_duplicates().shape[0] > 1
    for r in orders.itertuples():
        where = f" ({r.sweep}, {r.device_name})" if several else ""
        timed = str(getattr(r, "order_timed", r.order))
        if timed == ORDER_NOT_FITTED:
            lines.append(counted_report.headline_line(f"{r.method}{where}", r, res.rates, str(r.reason)))
            continue
        c = f"c = {_fmt(r.c)} s/D³ [{_fmt(r.c_low)}, {_fmt(r.c_high)}]"
        share = f"{_pct(r.d3_share_at_max)} of the step at D = {int(r.max_dim)}"
        if timed == "cubic":
            half = f"dominates from D ≈ {_dim(r.half_dim)} [{_dim(r.half_dim_low)}, {_dim(r.half_dim_high)}]"
            evidence = f"{c}, {share}, {half}"
        else:
            why = str(r.order_reason) if isinstance(r.order_reason, str) and r.order_reason else ""
            evidence = f"{why}: {c}, {share}"
        line = counted_report.headline_line(f"{r.method}{where}", r, res.rates, evidence)
        if r.n_groups > 1:
            line += f"; timed cubic in {r.n_cubic} of {r.n_groups} depth × batch curves"
        lines.append(line)
    return lines


def crossing_text(cross: pd.DataFrame, cross_pred: pd.DataFrame, key: tuple[object, ...]) -> str:
    """Measured crossover if one lies in range, else the fitted models' crossover."""
    names = [TAG_SWEEP, "depth", "batch_size", "baseline"]
    hit = cross[np.logical_and.reduce([cross[k] == v for k, v in zip(names, key, strict=True)])]
    if len(hit) and np.isfinite(hit["crossover_dim"].iloc[0]):
        return f"crossover at D ≈ {hit['crossover_dim'].iloc[0]:.0f} (measured)"
    if len(hit) and str(hit["crossover"].iloc[0]).startswith("always"):
        return "faster at every measured D"
    pred = cross_pred[np.logical_and.reduce([cross_pred[k] == v for k, v in zip(names, key, strict=True)])]
    if not len(pred):
        return ""
    d, low, high = (
        float(pred[c].iloc[0]) for c in ("crossover_pred_dim", "crossover_pred_low", "crossover_pred_high")
    )
    if d == float("inf"):
        return "no crossover predicted (the baseline stays cheaper)"
    if not np.isfinite(high):
        # the models' curves are within each other's uncertainty: a crossover D would be noise
        return f"no crossover determined (the fitted costs overlap: crossover interval [{_dim(low)}, ∞])"
    if d <= 0:
        return f"faster at every D by the fitted models (crossover interval [{_dim(low)}, {_dim(high)}])"
    return f"predicted crossover at D ≈ {_dim(d)} [{_dim(low)}, {_dim(high)}]"


def speedup_lines(
    speed: pd.DataFrame, cross: pd.DataFrame, pred: pd.DataFrame, cross_pred: pd.DataFrame
) -> list[str]:
    """Per baseline: the speedup of the reference at the largest measured D and at the predicted D,
    and where it becomes faster."""
    lines: list[str] = []
    if pred.empty:
        return lines
    base = pred[pred["speedup_of_reference"].notna()]
    configs = pred[["depth", "batch_size"]].drop_duplicates().shape[0]
    keys = [TAG_SWEEP, "depth", "batch_size", "method"]
    for (sweep, depth, batch, method), part in sort_methods(base, keys).groupby(keys, sort=False):
        measured = speed[
            (speed[TAG_SWEEP] == sweep)
            & (speed["depth"] == depth)
            & (speed["batch_size"] == batch)
            & (speed["baseline"] == method)
        ].sort_values("dim")
        head = f"{REFERENCE_METHOD} vs {method}" + (f" (depth {depth}, batch {batch})" if configs > 1 else "")
        parts = []
        if len(measured):
            last = measured.iloc[-1]
            parts.append(f"×{last['speedup']:.3g} measured at D = {int(last['dim'])}")
        future = part[~part["measured"].astype(bool)]
        if len(future):
            shown = [
                f"×{r.speedup_of_reference:.3g} [{r.speedup_low:.3g}, {r.speedup_high:.3g}] at D = {r.dim}"
                for r in future.itertuples()
            ]
            parts.append("predicted " + ", ".join(shown))
        crossing = crossing_text(cross, cross_pred, (sweep, depth, batch, method))
        lines.append(f"{head}: " + "; ".join(parts + ([crossing] if crossing else [])))
    return lines


def flag_line(res: CostResult) -> list[str]:
    """One line on disturbed timings, if any were flagged: whether leaving them out flips an order."""
    if res.flagged.empty:
        return []
    flipped, unfit = flag_effects(res.table)
    effects = []
    if flipped:
        # the flags are about timings, so only the timed order can flip (a counted order stands)
        effects.append("the timed order flips for " + ", ".join(flipped))
    if unfit:
        effects.append(", ".join(unfit) + " would have too few D left to order")
    effect = "; ".join(effects) if effects else "no timed order changes"
    return [f"{len(res.flagged)} timing(s) flagged as disturbed (see Timing quality); without them {effect}"]


def flag_effects(table: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Methods whose order flips when the flagged timings are left out, and those left unorderable."""
    changed = _changed_by_flags(table)
    without = changed["order_without_flagged"].astype(str)
    unfit = changed[without.str.startswith(ORDER_NOT_FITTED)]
    flipped = changed[~without.str.startswith(ORDER_NOT_FITTED)]
    return sorted(set(flipped["method"])), sorted(set(unfit["method"]))


def _changed_by_flags(table: pd.DataFrame) -> pd.DataFrame:
    """Curves whose order refitted without their flagged timings differs from their order."""
    return table[(table["n_flagged"] > 0) & (table["order_without_flagged"] != table["order"])]
