"""The main figure: step cost against D with the fitted cost models, and the D³ share per method.

One row per depth × batch size. Left: measured points (median over seeds of the fitted statistic,
bars min–max), the fitted ``t0 + a·D² + c·D³`` solid over the measured D and dashed out to the
largest predicted D (the model the order accepts: t0 + a·D² for a quadratic curve, the counted order
where the work was counted), and slope-2 / slope-3 guides through the reference's and the cubic
baseline's largest measured point (drawn after the axes are set, so they never widen them). Right: the share
``c·D³ / t(D)`` of each fitted model against D, with the half line and the materiality threshold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from analysis.cost_model import CUBIC_SHARE_MIN, ORDER_CUBIC
from analysis.cost_tables import GroupFit
from analysis.figures import FigureContext, method_colour, panels, save_figure, sweep_marker
from analysis.schema import REFERENCE_METHOD, TAG_SWEEP, method_sort_key


def _curve_span(g: GroupFit, extend_to: float) -> tuple[np.ndarray, np.ndarray]:
    assert g.fit is not None
    lo, hi = g.fit.dims[0], g.fit.max_dim
    return np.geomspace(lo, hi, 60), np.geomspace(hi, max(hi, extend_to), 40)


def _points(ax: Axes, g: GroupFit, colour: str, marker: str) -> None:
    dims = np.unique(g.dims)
    per = [g.values[g.dims == d] for d in dims]
    med = np.array([np.median(v) for v in per])
    err = np.vstack([med - [v.min() for v in per], [v.max() for v in per] - med])
    ax.errorbar(dims, med, yerr=err, color=colour, marker=marker, ms=4, lw=0, elinewidth=0.8, capsize=2)


def _anchor(groups: list[GroupFit], method: str) -> tuple[float, float] | None:
    """(D, t) of ``method``'s largest measured point (median over seeds), if it was timed."""
    for g in groups:
        if g.labels["method"] == method and len(g.dims):
            d = float(g.dims.max())
            return d, float(np.median(g.values[g.dims == d]))
    return None


def _cubic_anchor(groups: list[GroupFit]) -> tuple[float, float] | None:
    """The first cubic curve in display order (ordinary when it was timed), else the first baseline."""
    timed = sorted((g for g in groups if len(g.dims)), key=lambda g: method_sort_key(str(g.labels["method"])))
    cubic = [g for g in timed if g.model_order == ORDER_CUBIC]
    others = [g for g in timed if g.labels["method"] != REFERENCE_METHOD]
    pick = cubic or others
    return _anchor(pick, str(pick[0].labels["method"])) if pick else None


def _guides(ax: Axes, groups: list[GroupFit]) -> list[Line2D]:
    """Slope-2 and slope-3 lines through the data, drawn without changing the axis limits."""
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    span = np.geomspace(*xlim, 50)
    lines: list[Line2D] = []
    for slope, anchor, style in (
        (2, _anchor(groups, REFERENCE_METHOD), (0, (5, 3))),
        (3, _cubic_anchor(groups), (0, (1, 2))),
    ):
        if anchor is None:
            continue
        d0, t0 = anchor
        (line,) = ax.plot(
            span,
            t0 * (span / d0) ** slope,
            color="0.45",
            lw=1.0,
            ls=style,
            zorder=1,
            label=f"∝ D{'²' if slope == 2 else '³'} guide",
        )
        lines.append(line)
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    return lines


def plot_cost_model(
    groups: list[GroupFit],
    ctx: FigureContext,
    out_dir: Path,
    *,
    name: str,
    ylabel: str,
    title: str,
    extend_to: float,
    unit: str = "s",
) -> list[Path]:
    """The cost-model figure (see module docstring); ``extend_to``: largest predicted D."""
    configs = sorted({(g.labels["depth"], g.labels["batch_size"]) for g in groups if len(g.dims)})
    fig, axes = panels(2 * len(configs), width=5.0, height=3.8)
    sweeps = list(dict.fromkeys(str(g.labels[TAG_SWEEP]) for g in groups))
    handles: dict[str, Line2D] = {}
    for row, (depth, batch) in enumerate(configs):
        ax, share_ax = axes[2 * row], axes[2 * row + 1]
        part = [g for g in groups if (g.labels["depth"], g.labels["batch_size"]) == (depth, batch)]
        part.sort(key=lambda g: (str(g.labels[TAG_SWEEP]), method_sort_key(str(g.labels["method"]))))
        for g in part:
            if not len(g.dims):
                continue
            method, sweep = str(g.labels["method"]), str(g.labels[TAG_SWEEP])
            colour = method_colour(method)
            _points(ax, g, colour, sweep_marker(sweeps, sweep))
            label = f"{method}: {g.model_order}" + (f" [{sweep}]" if len(sweeps) > 1 else "")
            if g.fit is not None and g.model_order != g.order:
                label += f" (timed {g.order})"
            if g.fit is None:
                handles.setdefault(label, Line2D([], [], color=colour, marker="o", lw=0))
                continue
            inside, beyond = _curve_span(g, extend_to)
            (line,) = ax.plot(inside, g.fit.predict_model(inside), color=colour, lw=1.8)
            ax.plot(beyond, g.fit.predict_model(beyond), color=colour, lw=1.2, ls="--")
            # A quadratic curve's D³ term was rejected (by the timed order, or by the count where the work
            # was counted): its share is shown thin, and not extrapolated.
            cubic = g.model_order == ORDER_CUBIC
            share_ax.plot(inside, g.fit.share(inside), color=colour, lw=1.8 if cubic else 0.9)
            if cubic:
                share_ax.plot(beyond, g.fit.share(beyond), color=colour, lw=1.2, ls="--")
            dims = np.array(g.fit.dims)
            share_ax.plot(dims, g.fit.share(dims), color=colour, marker="o", ms=3 if cubic else 2, lw=0)
            handles.setdefault(label, line)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("dimension D")
        ax.set_ylabel(ylabel)
        ax.set_title(f"depth {depth}, batch {batch}: measured and fitted model", fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
        for line in _guides(ax, part):
            handles.setdefault(str(line.get_label()), line)
        share_ax.axhline(0.5, color="0.3", lw=0.9, ls="-.")
        share_ax.axhline(CUBIC_SHARE_MIN, color="0.6", lw=0.9, ls=":")
        share_ax.set_xscale("log", base=2)
        share_ax.set_ylim(-0.02, 1.02)
        share_ax.set_xlabel("dimension D")
        share_ax.set_ylabel("D³ share c·D³ / t(D)" if unit == "s" else "D³ share c·D³ / m(D)")
        share_ax.set_title(
            f"D³ share of the full fit (thin: rejected; dash-dot ½, dotted {CUBIC_SHARE_MIN:.0%})", fontsize=9
        )
        share_ax.grid(True, which="major", alpha=0.3)
    handles["measured"] = Line2D([], [], color="0.3", lw=1.8, label="fit over measured D")
    handles["predicted"] = Line2D([], [], color="0.3", lw=1.2, ls="--", label="extrapolated")
    labels = list(handles)
    handles_list = [handles[k] for k in labels]
    labels = [
        h.get_label() if k in ("measured", "predicted") else k
        for k, h in zip(labels, handles_list, strict=True)
    ]
    fig.legend(handles_list, labels, loc="center right", fontsize=7, frameon=False)
    return save_figure(fig, ctx, out_dir, name, title, right=0.87)


def plot_achieved_rate(rates: pd.DataFrame, ctx: FigureContext, out_dir: Path) -> list[Path]:
    """Achieved GFLOP/s (counted FLOPs per step over the fastest step time) against D, one line per method,
    one panel per depth × batch size, with each sweep's measured matrix-multiply peak as a horizontal line;
    a rate whose timing was flagged as disturbed (``rates["disturbed"]``) is circled hollow."""
    configs = sorted({(r.depth, r.batch_size) for r in rates.itertuples()})
    fig, axes = panels(len(configs), height=3.6)
    sweeps = list(dict.fromkeys(rates[TAG_SWEEP].astype(str)))
    for ax, (depth, batch) in zip(axes, configs, strict=True):
        part = rates[(rates["depth"] == depth) & (rates["batch_size"] == batch)]
        keys = sorted(
            {(str(r.sweep), str(r.method)) for r in part.itertuples()},
            key=lambda k: (k[0], method_sort_key(k[1])),
        )
        for sweep, method in keys:
            rows = part[(part[TAG_SWEEP] == sweep) & (part["method"] == method)].sort_values("dim")
            ax.plot(
                rows["dim"].astype(float),
                rows["gflops"],
                color=method_colour(method),
                marker=sweep_marker(sweeps, sweep),
                ms=4,
                lw=1.5,
                label=method + (f" [{sweep}]" if len(sweeps) > 1 else ""),
            )
            disturbed = rows[rows["disturbed"].astype(bool)] if "disturbed" in rows else rows.iloc[0:0]
            if len(
                disturbed
            ):  # hollow: its timing was flagged, the rate says more of the machine than the step
                ax.plot(
                    disturbed["dim"].astype(float),
                    disturbed["gflops"],
                    ls="none",
                    marker="o",
                    ms=8,
                    mfc="white",
                    mec=method_colour(method),
                    label=f"{method}: disturbed timing (flagged)",
                )
        for sweep, peak in part.groupby(TAG_SWEEP)["peak_gflops"].first().items():
            if np.isfinite(peak):
                where = f" [{sweep}]" if len(sweeps) > 1 else ""
                ax.axhline(peak, color="0.3", ls="--", lw=1.0, label=f"matmul peak {peak:.3g} GFLOP/s{where}")
        ax.set_xscale("log", base=2)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("dimension D")
        ax.set_ylabel("achieved GFLOP/s (counted FLOPs / step time)")
        ax.set_title(f"depth {depth}, batch {batch}", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(
        fig, ctx, out_dir, "achieved_rate", "Achieved GFLOP/s against D and the machine's matmul peak"
    )
