"""Figures of the learning and search sections: likelihood against wall-clock, KL gap at convergence
against D, the search's LL against trial budget, and the hyper-parameters' importances.

Axis limits are robust: the first evaluations of a fit that starts far from the data (a diverging start,
a KL gap of 10⁴ nats that falls to 10 within seconds) would squeeze every curve into a line; they are
clipped, and the function returns how many points it clipped so that the caption can say so. A panel with
fewer than two points is not drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from analysis.figures import FigureContext, method_colour, panels, save_figure
from analysis.schema import method_sort_key

MAX_LEARNING_PANELS = 4
#: Robust limits: the axis spans these quantiles of a panel's values (widened by a margin), never more.
_LOW_Q, _HIGH_Q = 0.05, 0.95


@dataclass(frozen=True)
class Plotted:
    """A saved figure and what a caption must say about it."""

    paths: list[Path]
    clipped: int = 0  # points outside the robust axis limits
    dims: tuple[int, ...] = ()  # the D of the panels drawn


def panel_dims(curves: pd.DataFrame, limit: int = MAX_LEARNING_PANELS) -> list[int]:
    """At most ``limit`` D whose panel would show a curve of at least two points, evenly spread and always
    the largest."""
    sizes = curves.groupby(["dim", "run_id"]).size()
    drawable = sorted({int(d) for (d, _), n in sizes.items() if n >= 2})
    if len(drawable) <= limit:
        return drawable
    pick = np.linspace(0, len(drawable) - 1, limit).round().astype(int)
    return [drawable[i] for i in sorted(set(pick.tolist()))]


def settled(part: pd.DataFrame, y: str = "y", order: str = "train_time_s") -> np.ndarray:
    """The values of ``y`` after each run's first evaluations (the first tenth of them, at least one):
    what the axis must show. The early ones of a start far from the data may fall outside it."""
    kept = []
    for _, rows in part.groupby("run_id", sort=False):
        values = rows.sort_values(order)[y].to_numpy(dtype=float)
        skip = max(1, len(values) // 10) if len(values) > 2 else 0
        kept.append(values[skip:])
    values = np.concatenate(kept) if kept else np.array([])
    return values[np.isfinite(values)]


def robust_limits(
    values: np.ndarray, settled_values: np.ndarray, *, log: bool = False, clip_high: bool = False
) -> tuple[tuple[float, float], int]:
    """Axis limits spanning all of ``values`` on the good side and ``settled_values`` on the side the
    early evaluations stray to (low for an LL, high for a KL gap: ``clip_high``), with a 5% margin; and
    how many ``values`` fall outside."""
    values = values[np.isfinite(values) & ((values > 0) if log else True)]
    settled_values = settled_values[np.isfinite(settled_values) & ((settled_values > 0) if log else True)]
    if not len(values):
        return ((1.0, 10.0) if log else (0.0, 1.0)), 0
    ref = settled_values if len(settled_values) else values
    t = np.log10 if log else (lambda v: v)
    if clip_high:
        low, high = float(t(values).min()), float(t(ref).max())
    else:
        low, high = float(t(ref).min()), float(t(values).max())
    span = (high - low) or max(abs(high), 1.0) * 0.1
    low, high = low - 0.05 * span, high + 0.05 * span
    limits = (10**low, 10**high) if log else (low, high)
    clipped = int(((values > limits[1]) if clip_high else (values < limits[0])).sum())
    return limits, clipped


def plot_curves(curves: pd.DataFrame, ctx: FigureContext, out_dir: Path, *, kl_gap: bool) -> Plotted | None:
    """Validation LL (or the KL gap ``true_test_ll − val_ll``, log scale) against training wall-clock, one
    line per trial, coloured by method, one panel per D; None when no panel has two points."""
    data = curves[curves["train_time_s"] > 0].copy()
    data["y"] = (data["true_test_ll"] - data["val_ll"]) if kl_gap else data["val_ll"]
    if kl_gap:
        data = data[data["y"] > 0]  # log axis; a non-positive gap is noise around zero
    dims = panel_dims(data)
    if not dims:
        return None
    fig, axes = panels(len(dims), height=3.5)
    clipped = 0
    for ax, dim in zip(axes, dims, strict=True):
        part = data[data["dim"] == dim]
        seen: set[str] = set()
        for run_id, rows in part.groupby("run_id", sort=False):
            method = str(rows["method"].iloc[0])
            rows = rows.sort_values("train_time_s")
            ax.plot(
                rows["train_time_s"],
                rows["y"],
                color=method_colour(method),
                lw=1.2,
                alpha=0.75,
                label=None if method in seen else method,
                gid=str(run_id),
            )
            seen.add(method)
        values = part["y"].to_numpy(dtype=float)
        (low, high), n_out = robust_limits(values, settled(part), log=kl_gap, clip_high=kl_gap)
        clipped += n_out
        ax.set_ylim(low, high)
        ax.set_xscale("log")
        if kl_gap:
            ax.set_yscale("log")
        ax.set_xlabel("training wall-clock time (s)")
        ax.set_ylabel("true LL − val LL ≈ KL (nats/sample)" if kl_gap else "validation LL (nats/sample)")
        ax.set_title(f"D = {dim}", fontsize=9)
        ax.grid(True, alpha=0.3)
        _method_legend(ax)
    title = "KL gap to the true model against wall-clock" if kl_gap else "Validation LL against wall-clock"
    name = "kl_gap_vs_time" if kl_gap else "ll_vs_time"
    return Plotted(save_figure(fig, ctx, out_dir, name, title), clipped, tuple(dims))


def _method_legend(ax) -> None:
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: method_sort_key(labels[i]))
    ax.legend(
        [handles[i] for i in order],
        [labels[i] for i in order],
        fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
    )


def plot_kl_vs_dim(kl: pd.DataFrame, ctx: FigureContext, out_dir: Path) -> Plotted | None:
    """KL gap at convergence against D (median and [min, max] over seeds) and the same per dimension, one
    line per method; None when no method has two D."""
    data = kl[kl["kl_gap_median"].notna()]
    counts = data.groupby("method")["dim"].nunique()
    methods = sorted((m for m, n in counts.items() if n >= 2), key=method_sort_key)
    if not methods:
        return None
    fig, axes = panels(2, height=3.5)
    for ax, prefix, label in zip(
        axes,
        ("kl_gap", "kl_gap_per_dim"),
        ("KL gap at convergence (nats/sample)", "KL gap per dimension (nats / D)"),
        strict=True,
    ):
        for method in methods:
            rows = data[data["method"] == method].sort_values("dim")
            mid = rows[f"{prefix}_median"].to_numpy(dtype=float)
            err = np.vstack([mid - rows[f"{prefix}_min"], rows[f"{prefix}_max"] - mid])
            ax.errorbar(
                rows["dim"].astype(float),
                mid,
                yerr=np.clip(err, 0, None),
                color=method_colour(method),
                marker="o",
                ms=4,
                lw=1.5,
                capsize=3,
                label=method,
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("dimension D")
        ax.set_ylabel(label)
        ax.grid(True, which="major", alpha=0.3)
        _method_legend(ax)
    title = "KL gap at convergence against D (median, bars: min–max over seeds)"
    return Plotted(save_figure(fig, ctx, out_dir, "kl_at_convergence_vs_dim", title))


def plot_search_budget(
    curves: pd.DataFrame, references: Sequence[tuple[str, float]], ctx: FigureContext, out_dir: Path
) -> Plotted | None:
    """The search's validation LL against each trial's training steps (ASHA's cut trials end early), with
    horizontal reference lines ``(label, LL)``; None without a curve of two points."""
    data = curves[curves["val_ll"].notna()]
    sizes = data.groupby("run_id").size()
    data = data[data["run_id"].isin(sizes[sizes >= 2].index)]
    if data.empty:
        return None
    fig, axes = panels(1, width=5.6)
    ax = axes[0]
    for run_id, rows in data.groupby("run_id", sort=False):
        rows = rows.sort_values("step")
        ax.plot(rows["step"], rows["val_ll"], color="0.35", lw=1.0, alpha=0.6, gid=str(run_id))
    styles = ("--", ":", "-.")
    for i, (label, value) in enumerate(references):
        ax.axhline(
            value, color=("#D55E00", "#0072B2", "#009E73")[i % 3], ls=styles[i % 3], lw=1.2, label=label
        )
    values = data["val_ll"].to_numpy(dtype=float)
    with_refs = np.concatenate([values, [v for _, v in references]])
    refs = np.array([v for _, v in references], dtype=float)
    (low, high), clipped = robust_limits(with_refs, np.concatenate([settled(data, "val_ll", "step"), refs]))
    ax.set_ylim(low, high)
    ax.set_xscale("log")
    ax.set_xlabel("training steps of the trial (its budget so far)")
    ax.set_ylabel("validation LL (nats/sample)")
    ax.grid(True, alpha=0.3)
    handles = [
        Line2D([], [], color="0.35", lw=1.0, label="one search trial"),
        *ax.get_legend_handles_labels()[0],
    ]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    paths = save_figure(
        fig, ctx, out_dir, "hpo_ll_vs_budget", "Hyper-parameter search: val LL against budget"
    )
    return Plotted(paths, clipped)


def plot_importances(importances: pd.DataFrame, ctx: FigureContext, out_dir: Path) -> Plotted | None:
    """Horizontal bars: each searched hyper-parameter's share of the explained variance of the val LL."""
    if importances.empty:
        return None
    data = importances.sort_values("importance")
    fig, axes = panels(1, width=5.0, height=0.5 * len(data) + 1.6)
    ax = axes[0]
    ax.barh(data["parameter"], data["importance"], color="#0072B2")
    ax.set_xlim(0, 1)
    ax.set_xlabel("importance (share of the val-LL variance explained, fANOVA)")
    ax.grid(True, axis="x", alpha=0.3)
    return Plotted(save_figure(fig, ctx, out_dir, "hpo_importances", "Hyper-parameter importances"))
