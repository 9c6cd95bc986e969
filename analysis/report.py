"""`build_report`: MLflow runs of one or several sweeps → report.html, report.md, figures, tables.

Output layout in ``out_dir`` (rebuilt from scratch on every call)::

    report.html   self-contained: images as base64 data URIs, tables as HTML
    report.md     the same text, figures linked from figures/
    figures/      *.png and *.svg
    tables/       *.csv at full precision
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from analysis import (
    convergence,
    cost_display,
    cost_sections,
    counted_report,
    grid,
    learning,
    predictions,
    scaling,
    search,
)
from analysis import figures as fig
from analysis.arguments import MIN_BOOT, check_int, check_nonnegative
from analysis.builder import Builder
from analysis.cost_model import DEFAULT_BOOT
from analysis.cost_tables import RUNTIME_FALLBACK, RUNTIME_STAT
from analysis.errors import ReportError
from analysis.loading import SweepData, SweepInfo, learning_curves, load_sweep_data
from analysis.render import Section, render_html, render_markdown
from analysis.report_files import ARTIFACT_PATH, log_artifacts, write_whole
from analysis.schema import (
    DEFAULT_EXPERIMENT,
    FLOOR_METHOD,
    KIND_HPO,
    PEAK_METRIC,
    PEER_METHODS,
    REFERENCE_METHOD,
    STATUS_OK,
    TAG_CPU_MODEL,
    TAG_CUDA_VERSION,
    TAG_DEVICE_NAME,
    TAG_GIT_COMMIT,
    TAG_HOST,
    TAG_KIND,
    TAG_STATUS,
    TAG_STATUS_REASON,
    TAG_SWEEP,
    TAG_TORCH_VERSION,
    TAG_TRIAL_ID,
    method_sort_key,
)
from analysis.verdict_tracking import log_verdicts

_OWNED = ("report.html", "report.md", "figures", "tables")


@dataclass
class Report:
    """What :func:`build_report` wrote, and the headline findings."""

    out_dir: Path
    html: Path
    markdown: Path
    figures: list[Path]
    tables: dict[str, Path]
    sweeps: list[str]
    headline: list[str] = field(default_factory=list)
    logged_to_runs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"Report for sweep(s) {', '.join(self.sweeps)} → {self.out_dir}"]
        lines += [f"  {h}" for h in self.headline]
        lines.append(
            f"  wrote {self.html.name}, {self.markdown.name}, {len(self.figures)} figure files, "
            f"{len(self.tables)} tables"
        )
        if self.logged_to_runs:
            lines.append(
                f"  logged as artifacts '{ARTIFACT_PATH}/' of run(s) {', '.join(self.logged_to_runs)}"
            )
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _prepare_out_dir(out_dir: str | Path) -> Path:
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise ReportError(f"out_dir {str(out)!r} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    # Remove only what an earlier report wrote, so that no stale figure or table survives.
    for name in _OWNED:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    return out


def _dates(runs: pd.DataFrame) -> str:
    if "start_time" not in runs or runs["start_time"].isna().all():
        return "unknown"
    first, last = runs["start_time"].min(), runs["start_time"].max()
    a, b = first.strftime("%Y-%m-%d"), last.strftime("%Y-%m-%d")
    return a if a == b else f"{a} to {b}"


def _devices(runs: pd.DataFrame) -> tuple[str, ...]:
    names = [d for d in runs[TAG_DEVICE_NAME].unique().tolist() if d]
    if not names:
        names = [d for d in runs["device"].unique().tolist() if d]
    return tuple(sorted(names))


def _restricted(ctx: fig.FigureContext, runs: pd.DataFrame) -> fig.FigureContext:
    if runs.empty:
        return ctx
    return replace(
        ctx,
        sweeps=tuple(dict.fromkeys(runs[TAG_SWEEP].tolist())),
        devices=_devices(runs),
        run_dates=_dates(runs),
    )


def _overview(data: SweepData, ctx: fig.FigureContext) -> Section:
    runs = data.runs
    sweeps = pd.DataFrame(
        [
            {
                TAG_SWEEP: s.name,
                TAG_KIND: s.kind,
                "parent run": s.parent_run_id or "(none)",
                "trials": int((runs[TAG_SWEEP] == s.name).sum()),
                "older parents ignored": len(s.ignored_parent_ids),
            }
            for s in data.sweeps
        ]
    )
    env_cols = [
        TAG_SWEEP,
        TAG_DEVICE_NAME,
        "device",
        TAG_CPU_MODEL,
        TAG_TORCH_VERSION,
        TAG_CUDA_VERSION,
        TAG_HOST,
        TAG_GIT_COMMIT,
    ]
    env = (
        runs[env_cols]
        .drop_duplicates()
        .sort_values(env_cols)
        .rename(columns={TAG_DEVICE_NAME: "device name", "device": "torch device"})
    )
    paras = [
        f"Runs dated {ctx.run_dates}; report generated {ctx.generated}. "
        f"Device(s): {'; '.join(ctx.devices) or 'unknown'}.",
        "Timings are seconds of one full training step (gradient and optimizer step). Each trial logs the "
        "median, the fastest (sec_per_iter_min) and the IQR of its timed repeats; cost models and "
        "speedups use the fastest, which contention on a shared machine disturbs least (as timeit does), "
        "falling back to the median for runs without it. Across seeds the median is shown. "
        "Log-likelihoods are in nats per sample (higher is better).",
    ]
    for s in data.sweeps:
        if s.ignored_parent_ids:
            paras.append(
                f"Sweep {s.name!r} has {len(s.ignored_parent_ids)} older parent run(s) of the same "
                f"name ({', '.join(s.ignored_parent_ids)}); only the newest is reported."
            )
        if s.parent_run_id is None:
            paras.append(f"Sweep {s.name!r} has trial runs but no parent run.")
    return Section("Overview", paras, [("Sweeps", sweeps), ("Machines and software", env)])


def _trials(b: Builder, runs: pd.DataFrame, sweeps: list[SweepInfo]) -> Section:
    counts = pd.crosstab([runs[TAG_SWEEP], runs["method"]], runs[TAG_STATUS]).reset_index()
    counts.columns.name = None
    problems = runs.loc[
        runs[TAG_STATUS] != STATUS_OK,
        [
            TAG_SWEEP,
            TAG_TRIAL_ID,
            "method",
            "dim",
            "depth",
            "batch_size",
            "seed",
            TAG_STATUS,
            TAG_STATUS_REASON,
            "run_id",
        ],
    ]
    b.table("status_counts", counts)
    b.table("problem_trials", problems)
    b.table("trials", runs)
    n_bad = len(problems)
    paras = [
        f"{len(runs)} trial runs: "
        + ", ".join(f"{n} {s}" for s, n in runs[TAG_STATUS].value_counts().sort_index().items())
        + "."
    ]
    paras.append(
        "Every trial that is not 'ok' is listed below with its reason; such trials are left out "
        "of fits, speedups and learning curves."
        if n_bad
        else "All trials finished with status 'ok'."
    )
    cut = grid.capped_lines(sweeps) + grid.skipped_lines(runs)
    paras.append("Not run: " + "; ".join(cut) + "." if cut else "Every D of the grid ran for every method.")
    tables = cost_display.per_row(
        counts, {c: c for c in counts.columns}, "Trials per method and status", "status_counts", lift=False
    )
    if n_bad:
        tables += cost_display.per_row(
            problems,
            {c: c for c in problems.columns if c not in (TAG_TRIAL_ID, "run_id")},
            "Skipped, diverged and failed trials",
            "problem_trials",
        )
    return Section("Trials", paras, tables)


def _speed_metric(runs: pd.DataFrame) -> str:
    """The contention-robust minimum when every timed run logged it, else the median."""
    timed = runs[runs[TAG_STATUS] == STATUS_OK]
    timed = timed[timed[RUNTIME_FALLBACK].notna()]
    if len(timed) and RUNTIME_STAT in timed and timed[RUNTIME_STAT].notna().all():
        return RUNTIME_STAT
    return RUNTIME_FALLBACK


def _speedup_section(
    b: Builder, runs: pd.DataFrame, peaks: dict[str, float]
) -> tuple[list[Section], pd.DataFrame]:
    methods = set(runs.loc[runs["sec_per_iter"].notna(), "method"])
    if REFERENCE_METHOD not in methods or len(methods) < 2:
        return [
            Section(
                "Speedup and crossover",
                [
                    f"Needs timings of '{REFERENCE_METHOD}' and at least one other method; this "
                    f"report has: {sorted(methods) or 'none'}."
                ],
            )
        ], scaling.speedup_table(runs.iloc[0:0])
    metric = _speed_metric(runs)
    speed = b.table("speedup", scaling.speedup_table(runs, metric=metric))
    cross = b.table("crossover", scaling.crossover_table(speed))
    figure = b.figure(fig.plot_speedup(speed, cross, b.ctx, b.out_dir / "figures"))
    crossing = {
        "baseline": "baseline",
        "crossover": "crossover",
        "crossover_dim": "crossover D",
        "speedup_at_max_dim": "speedup at max D",
        "max_dim": "max D",
        "dims_compared": "D compared",
    }
    tables = cost_display.per_row(cross, crossing, "Crossover D per baseline", "crossover", sort="baseline")
    tables += cost_display.per_dim(
        speed, "speedup", f"Speedup t_baseline / t_{REFERENCE_METHOD}", "speedup", columns="baseline"
    )
    sections = [
        Section(
            "Speedup and crossover",
            [
                f"Speedup = t_baseline / t_{REFERENCE_METHOD} on {metric} (median over seeds; > 1 means "
                "the relative gradient is faster). The crossover is the D from which on relative stays "
                "faster, interpolated linearly in log-log between the neighbouring measured D; "
                "'always' / 'never in range' when no crossing lies within the measured D (the "
                "Predictions section gives the crossover of the fitted models).",
            ],
            tables,
            [("Speedup of the relative gradient over each baseline; dashed: crossover D.", figure)],
        )
    ]
    if FLOOR_METHOD in methods:
        over = b.table("overhead_mlp", scaling.overhead_table(runs, metric=metric, peaks=peaks))
        ofig = b.figure(fig.plot_overhead(over, b.ctx, b.out_dir / "figures"))
        logged = over["flop_floor"].notna().any()
        flop_text = (
            "The matrix-FLOP ratio relative/mlp is the one the runs logged (flop_ratio, from the core's "
            "method registry): the level a step bound by its matrix products would reach. The rest of a "
            "step (Adam, elementwise work) costs the same for both."
            if logged
            else "These runs did not log flop_ratio (they predate it), so the matrix-FLOP ratio is not shown."
        )
        sections.append(
            Section(
                "Overhead over the MLP floor",
                [
                    f"t_{REFERENCE_METHOD} / t_{FLOOR_METHOD} on {metric}: the same network trained "
                    "without the log-determinant term. " + flop_text,
                    "GFLOP/s: counted FLOPs per step over the step time; % of peak: "
                    f"{REFERENCE_METHOD}'s rate as a share of the sweep's measured matrix-multiply peak "
                    "(– where the runs did not count their work or no peak was measured).",
                ],
                cost_display.per_row(
                    over if logged else over.drop(columns=["flop_floor"]),
                    {
                        "dim": "D",
                        "overhead": "overhead (×)",
                        "flop_floor": "matrix-FLOP ratio",
                        "t_reference_s": f"t_{REFERENCE_METHOD} (s)",
                        "t_mlp_s": f"t_{FLOOR_METHOD} (s)",
                        "gflops_reference": f"GFLOP/s {REFERENCE_METHOD}",
                        "gflops_mlp": f"GFLOP/s {FLOOR_METHOD}",
                        "pct_of_peak": "% of peak",
                    },
                    f"Overhead t_{REFERENCE_METHOD} / t_{FLOOR_METHOD} per D",
                    "overhead_mlp",
                    sort="dim",
                ),
                [("Relative-gradient step time over the MLP step, with the matrix-FLOP ratio.", ofig)],
            )
        )
    else:
        sections.append(
            Section("Overhead over the MLP floor", [f"No '{FLOOR_METHOD}' trials in this report."])
        )
    return sections, speed


def _headline(
    b: Builder,
    runs: pd.DataFrame,
    runtime: cost_sections.CostResult,
    speed: pd.DataFrame,
    pred: pd.DataFrame,
    cross_pred: pd.DataFrame,
    peak_tags: dict[str, dict[str, str]],
) -> Section:
    """The report's opening: trial counts, each method's order (counted, and timed beside it) with its
    evidence, the share of the matmul peak the reference reaches, the speedups."""
    counts = runs[TAG_STATUS].value_counts().sort_index()
    lines = [f"{len(runs)} trials: " + ", ".join(f"{n} {s}" for s, n in counts.items())]
    peers = sorted((m for m in runs["method"].unique() if m in PEER_METHODS), key=method_sort_key)
    if peers:
        named = ", ".join(f"{m} ({PEER_METHODS[m]})" for m in peers)
        lines.append(f"peers, other libraries' flows in the same harness: {named}")
    learned = learning.headline_lines(b)
    if learning.compares(b):  # a sweep whose fits converged is read for its quality first
        lines, learned = lines + learned, []
    if runtime.groups:
        lines += cost_sections.method_lines(runtime)
        lines += counted_report.peak_lines(runtime.rates, peak_tags)
        cross = b.frames.get(
            "crossover", pd.DataFrame(columns=[TAG_SWEEP, "depth", "batch_size", "baseline"])
        )
        lines += cost_sections.speedup_lines(speed, cross, pred, cross_pred)
        lines += cost_sections.flag_line(runtime)
    elif (runs[TAG_KIND] != KIND_HPO).any():
        lines.append("No step timings in this report, so no cost model.")
    lines += learned + search.headline_lines(b)
    b.headline = lines
    figures = [("Step time against D with the fitted cost models (details below).", b.headline_figure)]
    return Section("Headline", [], [], figures if b.headline_figure is not None else [], bullets=list(lines))


def build_report(
    sweeps: str | Sequence[str],
    *,
    tracking_uri: str,
    out_dir: str | Path,
    experiment: str = DEFAULT_EXPERIMENT,
    min_dim: int | None = None,
    predict_dims: Sequence[int] | None = None,
    log_to_mlflow: bool = True,
    tolerance: float = convergence.TARGET_NATS,
    n_boot: int = DEFAULT_BOOT,
) -> Report:
    """Build the scaling report of one or several sweeps (several: to compare machines).

    Args:
        sweeps: sweep name(s) (the ``sweep`` tag of the parent and trial runs).
        tracking_uri: MLflow tracking URI, e.g. ``sqlite:////abs/path/mlflow.db``.
        out_dir: directory for report.html, report.md, figures/ and tables/ (rebuilt).
        experiment: MLflow experiment name.
        min_dim: range of the secondary log-log slope: D ≥ min_dim; default the upper half of each
            sweep's D. The cost models always use every D.
        predict_dims: D at which to predict step time and speedup (e.g. ``[8192, 23552]``); default
            the sweep's largest D × 4 and the paper's largest D, 23 552.
        log_to_mlflow: log out_dir as artifacts ``report/`` of each sweep's parent run, and the verdict
            (orders, c, D³ share, predicted speedups) as its tags and metrics (analysis.verdict_tracking).
        tolerance: nats below the best validation LL (of any method at a D and seed) that count as
            reaching the target in the time-to-target view.
        n_boot: bootstrap resamples per cost-model fit.

    Raises:
        ReportError: unknown or empty sweep, missing required metrics, bad arguments.
    """
    check_int("min_dim", min_dim, allow_none=True)
    check_nonnegative("tolerance", tolerance, " of nats")
    dims = predictions.check_predict_dims(predict_dims)
    check_int("n_boot", n_boot, minimum=MIN_BOOT)
    data = load_sweep_data(sweeps, tracking_uri=tracking_uri, experiment=experiment)
    out = _prepare_out_dir(out_dir)
    runs = data.runs
    ctx = fig.FigureContext(
        sweeps=tuple(s.name for s in data.sweeps),
        devices=_devices(runs),
        run_dates=_dates(runs),
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
    timed = runs[runs[TAG_KIND] != KIND_HPO]
    # Figure footers name only the sweeps and devices whose runs the figure shows.
    b = Builder(out, _restricted(ctx, timed))
    fit_args = {"predict_dims": dims, "min_dim": min_dim, "n_boot": n_boot, "seed": 0}
    peaks = {s.name: s.metrics[PEAK_METRIC] for s in data.sweeps if PEAK_METRIC in s.metrics}
    runtime = cost_sections.analyse(timed, "runtime", peaks=peaks, **fit_args)
    memory = cost_sections.analyse(timed, "memory", **fit_args)
    body = [_overview(data, ctx), _trials(b, runs, data.sweeps)]
    scaled = _scaling_sections(b, timed, runtime, memory, peaks, predicted=dims is not None)
    body += scaled.sections
    curves = learning_curves(data)
    if len(timed):
        body.append(learning.learning_section(b, runs, curves, nats=tolerance))
    b.ctx = _restricted(ctx, runs[runs[TAG_KIND] == KIND_HPO])
    searched = search.search_section(b, runs, data.best, curves)
    body += [searched] if searched is not None else []
    peak_tags = {s.name: s.tags for s in data.sweeps}
    headline = _headline(b, runs, runtime, scaled.speed, scaled.pred, scaled.cross_pred, peak_tags)
    report = _write_report(out, b, list(ctx.sweeps), [headline, *body])
    if log_to_mlflow:
        report.logged_to_runs, report.warnings = log_artifacts(tracking_uri, data.sweeps, out)
        report.warnings += log_verdicts(tracking_uri, data.sweeps, runtime.orders, scaled.pred)
        if "time_to_target" in b.frames:
            learning.log_trial_metrics(tracking_uri, b.frames["time_to_target"])
    return report


@dataclass
class _Scaled:
    """The timed runs' sections and the frames the headline reads: the speedup table, the predicted
    step times and the predicted crossovers (empty where nothing was timed or fitted)."""

    sections: list[Section]
    speed: pd.DataFrame
    pred: pd.DataFrame
    cross_pred: pd.DataFrame


def _scaling_sections(
    b: Builder,
    timed: pd.DataFrame,
    runtime: cost_sections.CostResult,
    memory: cost_sections.CostResult,
    peaks: dict[str, float],
    *,
    predicted: bool,
) -> _Scaled:
    """The cost model of the step time, the counted work, the predictions and timing quality, the speedups
    and the cost model of the memory; none for a report of HPO runs only (``predicted``: the user named
    the D to predict at)."""
    scaled = _Scaled([], scaling.speedup_table(timed.iloc[0:0]), pd.DataFrame(), pd.DataFrame())
    if not len(timed):
        return scaled
    body = scaled.sections
    body.append(cost_sections.cost_section(b, runtime, timed))
    body.append(counted_report.section(b, runtime.counted, runtime.rates, runtime.orders))
    if runtime.groups:
        prediction, scaled.pred, scaled.cross_pred = cost_sections.prediction_section(b, runtime, predicted)
        body += [prediction, cost_sections.timing_section(b, runtime, timed)]
    if timed["sec_per_iter"].notna().any():
        speed_sections, scaled.speed = _speedup_section(b, timed, peaks)
        body += speed_sections
    else:
        body.append(Section("Speedup and crossover", ["No timing data in this report."]))
    body.append(cost_sections.cost_section(b, memory, timed))
    return scaled


def _write_report(out: Path, b: Builder, sweeps: list[str], sections: list[Section]) -> Report:
    """report.md and report.html, each written whole, and the report that lists them and what b built."""
    title = f"relgrad report: {', '.join(sweeps)}"
    html_path, md_path = out / "report.html", out / "report.md"
    write_whole(md_path, render_markdown(title, sections))
    write_whole(html_path, render_html(title, sections))
    return Report(
        out_dir=out,
        html=html_path,
        markdown=md_path,
        figures=b.figures,
        tables=b.tables,
        sweeps=sweeps,
        headline=b.headline,
    )
