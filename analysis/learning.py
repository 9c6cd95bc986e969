"""The report's learning section and its headline lines: what a sweep's fits say about model quality.

Only fits that converged compare (:mod:`analysis.convergence`): a sweep whose fits were mostly cut by their
budget while still improving says so in one line and shows one small table. Otherwise: the KL gap at
convergence per D and method (also per dimension), the paired difference relative − ordinary, the time to
come within 1 nat of the best, and the curves. Log-likelihoods are in nats per sample, higher is better.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import convergence, learning_figures, wide_tables
from analysis.builder import Builder
from analysis.render import Section, sig3
from analysis.schema import (
    FLOOR_METHOD,
    KIND_HPO,
    REFERENCE_METHOD,
    REPORT_TRIAL_METRICS,
    STATUS_OK,
    TAG_KIND,
    TAG_STATUS,
    method_sort_key,
)


def scaling_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Rows of :func:`analysis.loading.learning_curves` from non-HPO sweeps with both a val LL
    and a wall-clock time, sorted by time."""
    if curves.empty:
        return curves
    keep = (curves[TAG_KIND] != KIND_HPO) & curves["val_ll"].notna() & curves["train_time_s"].notna()
    return curves[keep].sort_values(["run_id", "train_time_s"]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# The report's learning section
# --------------------------------------------------------------------------------------------
LEARNING_TITLE = "Learning: likelihood at convergence and against wall-clock"
#: Above this share of fits cut while still improving, the sweep does not compare quality at all.
MOSTLY_CUT = 0.5
FLOOR_NOTE = (
    f"'{FLOOR_METHOD}' is left out of every likelihood comparison: it trains the data term only, without "
    "the log-determinant, so it is a timing floor, not a density model."
)


def _density_runs(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[
        (runs[TAG_STATUS] == STATUS_OK) & (runs[TAG_KIND] != KIND_HPO) & (runs["method"] != FLOOR_METHOD)
    ]


def _cut_summary(outcomes: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per method: fits, how many were cut while still improving, median steps and training seconds."""
    train = runs.set_index("run_id")["train_time_s"]
    frame = outcomes.assign(train_s=outcomes["run_id"].map(train))
    table = frame.groupby("method", sort=False).agg(
        fits=("run_id", "size"),
        cut=("still_improving", "sum"),
        seconds=("train_s", "median"),
    )
    table = table.reset_index().rename(
        columns={"cut": "cut while still improving", "seconds": "median training (s)"}
    )
    return table.sort_values("method", key=lambda c: c.map(method_sort_key), kind="stable")


def learning_section(
    b: Builder, runs: pd.DataFrame, curves: pd.DataFrame, nats: float = convergence.TARGET_NATS
) -> Section:
    """Quality at convergence per D and method, the paired difference, time to target, and the curves;
    or, when most fits were cut by their budget while still improving, one line saying quality cannot be
    compared and one small table."""
    section = Section(LEARNING_TITLE)
    if (runs.loc[runs[TAG_KIND] != KIND_HPO, "method"] == FLOOR_METHOD).any():
        section.notes.append(FLOOR_NOTE)
    curves = scaling_curves(curves)
    curves = curves[curves["method"] != FLOOR_METHOD] if len(curves) else curves
    outcomes = convergence.trial_outcomes(_density_runs(runs), curves)
    if outcomes.empty:
        section.paragraphs.append("No ok density-model trials outside HPO sweeps, so no learning view.")
        return section
    b.table("learning_trials", outcomes)
    cut = int(outcomes["still_improving"].sum())
    if cut > MOSTLY_CUT * len(outcomes):
        section.paragraphs.append(
            f"Quality cannot be compared in this sweep: {cut} of {len(outcomes)} fits were cut by their "
            "budget while still improving (stopped_reason '… (still improving)'), so their likelihoods are "
            "not their methods' optima. Train until patience to compare them (the learning preset does)."
        )
        section.tables.append(
            ("Fits per method and how they stopped", _cut_summary(outcomes, runs), "learning_trials")
        )
        return section
    if cut:
        section.paragraphs.append(
            f"{cut} of {len(outcomes)} fits were cut by their budget while still improving: they are left "
            "out of the comparisons below (marked in tables/learning_trials.csv)."
        )
    teacher = bool(outcomes["kl_gap"].notna().any())
    kl = b.table("kl_at_convergence", convergence.kl_at_convergence(outcomes))
    _curve_figures(b, section, curves, teacher)
    if teacher:
        section.paragraphs.append(
            "On teacher data the true density is known: true test LL − test LL estimates the KL divergence "
            "from the true model to the trained one (nats per sample, ≥ 0 up to sampling noise); per "
            "dimension (nats / D) it compares across D. Cells: median [min, max] over the seeds whose fit "
            "converged; each seed is its own teacher, data and initialisation, shared by the methods."
        )
        shown = _recorded(b, learning_figures.plot_kl_vs_dim(kl, b.ctx, b.out_dir / "figures"))
        if shown is not None:
            section.figures.insert(0, ("KL gap at convergence against D, and per dimension.", shown.paths[0]))
        _add_by_dim(section, kl, "kl_gap", "KL gap at convergence (nats)", "kl_at_convergence")
        _add_by_dim(section, kl, "kl_gap_per_dim", "KL gap per dimension (nats / D)", "kl_at_convergence")
        paired = b.table("paired_difference", convergence.paired_difference(outcomes))
        if len(paired):
            section.tables.append(_paired_table(paired))
    if kl["gain_over_gaussian_median"].notna().any():
        caption = "Gain over the Gaussian yardstick (test LL, nats)"
        _add_by_dim(section, kl, "gain_over_gaussian", caption, "kl_at_convergence")
    times = b.table("time_to_target", convergence.time_to_target(outcomes, curves, nats))
    first = b.table("first_to_target", convergence.first_to_target(times))
    if len(first):
        section.paragraphs.append(
            f"Time to target: training seconds until the validation LL comes within {nats:g} nat of the "
            "best any method reached at that D and seed, and stays "
            "there up to the fit's best evaluation (median [min, max] over the seeds that reached it)."
        )
        spread = {"low": "time_min", "high": "time_max", "n": "n_reached"}
        for caption, frame in wide_tables.by_dim(first, "time_median", **spread):
            title = f"Seconds to within {nats:g} nat of the best: {caption}"
            section.tables.append((title, frame, "time_to_target"))
    return section


def _recorded(b: Builder, plotted: learning_figures.Plotted | None) -> learning_figures.Plotted | None:
    if plotted is not None:
        b.figure(plotted.paths)
    return plotted


def _clipped(plotted: learning_figures.Plotted) -> str:
    if not plotted.clipped:
        return ""
    return f" {plotted.clipped} early evaluation(s) of fits starting far from the data lie outside the axes."


def _curve_figures(b: Builder, section: Section, curves: pd.DataFrame, teacher: bool) -> None:
    """The KL gap (teacher data) or the validation LL against training wall-clock, per D."""
    if curves.empty:
        return
    shown = _recorded(b, learning_figures.plot_curves(curves, b.ctx, b.out_dir / "figures", kl_gap=teacher))
    if shown is None:
        return
    what = "KL gap (true LL − val LL)" if teacher else "Validation LL"
    dims = ", ".join(map(str, shown.dims))
    section.figures.append(
        (f"{what} against training time, one line per fit; D = {dims}.{_clipped(shown)}", shown.paths[0])
    )


def _add_by_dim(section: Section, kl: pd.DataFrame, value: str, title: str, csv: str) -> None:
    spread = {"low": f"{value}_min", "high": f"{value}_max", "n": "n"}
    for caption, frame in wide_tables.by_dim(kl, f"{value}_median", **spread):
        section.tables.append((f"{title}: {caption}", frame, csv))


def _paired_table(paired: pd.DataFrame) -> tuple[str, pd.DataFrame, str]:
    """D down the side: pairs, the mean paired difference and its 95% interval."""
    frame = paired.assign(
        interval=[
            f"[{sig3(lo)}, {sig3(hi)}]" if np.isfinite(lo) else "–"
            for lo, hi in zip(paired["ci_low"], paired["ci_high"], strict=True)
        ]
    )
    frame = frame.rename(
        columns={"dim": "D", "n_pairs": "seeds", "mean_diff": "mean", "interval": "95% interval"}
    )
    shown, constant = wide_tables.lift_constants(
        frame[[*(k for k in convergence.GROUP if k != "dim"), "D", "seeds", "mean", "95% interval"]],
        keep=("D", "seeds", "mean", "95% interval"),
    )
    caption = (
        f"KL gap {REFERENCE_METHOD} − {convergence.PAIRED_BASELINE}, paired by seed (nats; < 0: "
        f"{REFERENCE_METHOD} closer to the truth): {wide_tables.describe(constant)}"
    )
    return caption, shown, "paired_difference"


def log_trial_metrics(tracking_uri: str, times: pd.DataFrame) -> int:
    """Write each trial's ``time_to_target_s`` (when it reached the target) and ``target_ll`` onto its MLflow
    run (:data:`analysis.schema.REPORT_TRIAL_METRICS`); returns how many runs were written."""
    import time

    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    now = int(time.time() * 1000)
    written = 0
    for _, row in times.iterrows():
        values = {name: float(row[name]) for name in REPORT_TRIAL_METRICS if np.isfinite(row[name])}
        if values:
            client.log_batch(str(row["run_id"]), metrics=[Metric(k, v, now, 0) for k, v in values.items()])
            written += 1
    return written


def compares(b: Builder) -> bool:
    """Whether the section compared quality: most fits converged and the KL gap is known."""
    outcomes = b.frames.get("learning_trials")
    if outcomes is None or outcomes.empty:
        return False
    mostly_cut = int(outcomes["still_improving"].sum()) > MOSTLY_CUT * len(outcomes)
    return not mostly_cut and "kl_at_convergence" in b.frames and "paired_difference" in b.frames


def headline_lines(b: Builder) -> list[str]:
    """The learning part of the headline, from the tables the section wrote: one line when the fits do not
    compare, else per D the KL gap at convergence, the paired difference and who reached the target first."""
    outcomes = b.frames.get("learning_trials")
    if outcomes is None or outcomes.empty:
        return []
    cut = int(outcomes["still_improving"].sum())
    if cut > MOSTLY_CUT * len(outcomes):
        return [
            f"learning: quality not compared — {cut} of {len(outcomes)} fits were cut by their budget while "
            "still improving"
        ]
    if "kl_at_convergence" not in b.frames or "paired_difference" not in b.frames:
        return []
    return convergence.headline_lines(
        b.frames["kl_at_convergence"],
        b.frames["paired_difference"],
        b.frames.get("first_to_target", pd.DataFrame()),
    )
