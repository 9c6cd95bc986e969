"""Figures for the scaling report (matplotlib, Agg backend), each saved as PNG and SVG.

Every figure carries a footer naming the sweep(s), the device(s) and the dates, so that a PNG
lifted out of the report still says where its numbers come from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports are built on servers and in CI

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from analysis.schema import (
    DEFAULT_EXPERIMENT,
    METHOD_ORDER,
    PEER_METHODS,
    REFERENCE_METHOD,
    TAG_SWEEP,
    method_sort_key,
)

# Okabe–Ito colours: distinguishable with the common colour-vision deficiencies.
_PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
_DEFAULT_COLOUR = _PALETTE[-1]
# the peers (other libraries' flows): Paul Tol's muted wine, teal and olive, apart from the built-ins' hues
_PEER_PALETTE = ("#882255", "#44AA99", "#999933")
_MARKERS = ("o", "s", "^", "D", "v", "P")
_DPI = 150


def method_colour(method: str) -> str:
    """A fixed colour per method, the same in every figure; methods the schema does not know (a
    user-registered one) share the default colour."""
    if method in METHOD_ORDER and METHOD_ORDER.index(method) < len(_PALETTE) - 1:
        return _PALETTE[METHOD_ORDER.index(method)]
    peers = list(PEER_METHODS)
    if method in peers and peers.index(method) < len(_PEER_PALETTE):
        return _PEER_PALETTE[peers.index(method)]
    return _DEFAULT_COLOUR


@dataclass(frozen=True)
class FigureContext:
    """Provenance printed on every figure."""

    sweeps: tuple[str, ...]
    devices: tuple[str, ...]
    run_dates: str
    generated: str

    def footer(self) -> str:
        return (
            f"sweep: {', '.join(self.sweeps)}  ·  device: {'; '.join(self.devices) or 'unknown'}"
            f"  ·  runs: {self.run_dates}  ·  report: {self.generated}"
        )


def sweep_marker(sweeps: Sequence[str], sweep: str) -> str:
    return _MARKERS[list(sweeps).index(sweep) % len(_MARKERS)] if sweep in sweeps else "o"


def panels(n: int, width: float = 5.2, height: float = 3.9) -> tuple[Figure, list[Axes]]:
    cols = min(n, 2)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols + 2.2, height * rows + 0.6))
    flat = list(np.atleast_1d(axes).ravel())
    for extra in flat[n:]:
        extra.set_visible(False)
    return fig, flat[:n]


def _plain(value: float, _pos: int) -> str:
    return f"{value:g}"


def _tidy_log_axes(fig: Figure) -> None:
    """Plain tick labels (0.2, 1, 10, 1e-05) on log axes instead of mathtext powers; minor
    ticks at 2× and 5× are labelled only when a base-10 axis spans less than two decades."""
    for ax in fig.axes:
        for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            if axis.get_scale() != "log" or lo <= 0 or hi <= 0:
                continue
            axis.set_major_formatter(FuncFormatter(_plain))
            if getattr(axis.get_transform(), "base", 10) != 10:
                continue  # base-2 D axes: every major tick is a measured power of two
            narrow = np.log10(hi / lo) < 2
            axis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0) if narrow else "auto"))
            axis.set_minor_formatter(FuncFormatter(_plain) if narrow else NullFormatter())


def save_figure(
    fig: Figure, ctx: FigureContext, out_dir: Path, name: str, title: str, *, right: float = 1.0
) -> list[Path]:
    """Title, provenance footer, tidy log axes; PNG and SVG under ``out_dir``; ``right``: the
    fraction of the width left to the axes (the rest holds a figure-level legend)."""
    _tidy_log_axes(fig)
    fig.suptitle(title, fontsize=11)
    fig.text(0.01, 0.005, ctx.footer(), fontsize=7, color="0.35", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.03, right, 1))
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.svg"]
    fig.savefig(paths[0], dpi=_DPI, metadata={"Software": None})
    # A fixed hash salt and no date make SVGs byte-identical across reruns on the same data.
    with matplotlib.rc_context({"svg.hashsalt": DEFAULT_EXPERIMENT}):
        fig.savefig(paths[1], metadata={"Date": None})
    plt.close(fig)
    return paths


def _config_label(depth: object, batch: object) -> str:
    return f"depth {depth}, batch {batch}"


def plot_speedup(
    speedups: pd.DataFrame, crossovers: pd.DataFrame, ctx: FigureContext, out_dir: Path
) -> list[Path]:
    """``t_baseline / t_relative`` vs D per baseline (log-log), with the break-even line and
    each interpolated crossover D."""
    configs = sorted(speedups.groupby(["depth", "batch_size"]).groups)
    fig, axes = panels(len(configs))
    sweeps = list(dict.fromkeys(speedups[TAG_SWEEP].tolist()))  # sweeps actually plotted
    for ax, (depth, batch) in zip(axes, configs, strict=True):
        part = speedups[(speedups["depth"] == depth) & (speedups["batch_size"] == batch)]
        for (sweep, baseline), rows in sorted(
            part.groupby([TAG_SWEEP, "baseline"]),
            key=lambda kv: (kv[0][0], method_sort_key(kv[0][1])),
        ):
            rows = rows.sort_values("dim")
            colour = method_colour(baseline)
            label = f"{baseline} / {REFERENCE_METHOD}" + (f" [{sweep}]" if len(sweeps) > 1 else "")
            ax.plot(
                rows["dim"].astype(float),
                rows["speedup"],
                color=colour,
                lw=1.5,
                marker=sweep_marker(sweeps, sweep),
                ms=4,
                label=label,
            )
            cross = crossovers[
                (crossovers[TAG_SWEEP] == sweep)
                & (crossovers["baseline"] == baseline)
                & (crossovers["depth"] == depth)
                & (crossovers["batch_size"] == batch)
            ]
            if len(cross) and np.isfinite(cross["crossover_dim"].iloc[0]):
                ax.axvline(cross["crossover_dim"].iloc[0], color=colour, lw=0.8, ls="--")
        ax.axhline(1.0, color="0.2", lw=1.0, label="equal time")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("dimension D")
        ax.set_ylabel(f"speedup of {REFERENCE_METHOD} (t_baseline / t_{REFERENCE_METHOD})")
        ax.set_title(_config_label(depth, batch) + "  (dashed: crossover D)", fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(fig, ctx, out_dir, "speedup_vs_dim", "Speedup of the relative gradient per step")


def plot_overhead(overhead: pd.DataFrame, ctx: FigureContext, out_dir: Path) -> list[Path]:
    """``t_relative / t_mlp`` vs D with the matrix-FLOP ratio logged by the runs (when they did)."""
    configs = sorted(overhead.groupby(["depth", "batch_size"]).groups)
    fig, axes = panels(len(configs), height=3.4)
    sweeps = list(dict.fromkeys(overhead[TAG_SWEEP].tolist()))  # sweeps actually plotted
    for ax, (depth, batch) in zip(axes, configs, strict=True):
        part = overhead[(overhead["depth"] == depth) & (overhead["batch_size"] == batch)]
        for sweep, rows in part.groupby(TAG_SWEEP):
            rows = rows.sort_values("dim")
            ax.plot(
                rows["dim"].astype(float),
                rows["overhead"],
                color=method_colour(REFERENCE_METHOD),
                marker=sweep_marker(sweeps, str(sweep)),
                ms=4,
                lw=1.5,
                label=f"{REFERENCE_METHOD} / mlp" + (f" [{sweep}]" if len(sweeps) > 1 else ""),
            )
        floors = part["flop_floor"].dropna().unique() if "flop_floor" in part else []
        for floor in floors:
            ax.axhline(floor, color="0.3", ls="--", lw=1.0, label=f"matrix-FLOP ratio {floor:.3g}")
        ax.axhline(1.0, color="0.6", ls=":", lw=1.0, label="mlp (no log-det)")
        ax.set_xscale("log", base=2)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("dimension D")
        ax.set_ylabel("time per step relative to mlp (×)")
        ax.set_title(_config_label(depth, batch), fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(
        fig, ctx, out_dir, "overhead_vs_mlp", "Cost of the relative gradient over a plain MLP step"
    )
