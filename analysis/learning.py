"""Learning views: validation LL against wall-clock, KL gap on teacher data, time to a target LL,
and the hyper-parameter search tables.

Log-likelihoods are in nats per sample, higher is better. On ``teacher`` data the data-generating
density is known, so ``true_test_ll − LL`` estimates KL(p_true ‖ p_model) ≥ 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.schema import ROLE_BEST, STATUS_OK

DEFAULT_TOLERANCE = 0.1
TARGET_GROUP: tuple[str, ...] = ("sweep", "dataset", "dim")
TRIAL_CONFIG: tuple[str, ...] = ("depth", "batch_size", "method")


def scaling_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Rows of :func:`analysis.loading.learning_curves` from non-HPO sweeps with both a val LL
    and a wall-clock time, sorted by time."""
    if curves.empty:
        return curves
    keep = (curves["kind"] != "hpo") & curves["val_ll"].notna() & curves["train_time_s"].notna()
    return curves[keep].sort_values(["run_id", "train_time_s"]).reset_index(drop=True)


def has_teacher(runs: pd.DataFrame) -> bool:
    """Whether any trial carries the true model's test LL (teacher data)."""
    return bool(runs["true_test_ll"].notna().any())


def kl_gap_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Final ``true_test_ll − test_ll`` (≈ KL, nats) per configuration; median over seeds."""
    keys = [*TARGET_GROUP, *TRIAL_CONFIG]
    columns = [*keys, "kl_gap_median", "kl_gap_min", "kl_gap_max", "n"]
    part = runs[(runs["status"] == STATUS_OK) & runs["true_test_ll"].notna()]
    part = part[part["test_ll"].notna()]
    if part.empty:
        return pd.DataFrame(columns=columns)
    gap = (part["true_test_ll"] - part["test_ll"]).rename("gap")
    out = (
        part.assign(gap=gap)
        .groupby(keys, sort=True)["gap"]
        .agg(kl_gap_median="median", kl_gap_min="min", kl_gap_max="max", n="size")
        .reset_index()
    )
    return out[columns]


def _first_time_reaching(trial: pd.DataFrame, target: float) -> float:
    reached = trial[trial["val_ll"] >= target]
    return float(reached["train_time_s"].min()) if len(reached) else float("nan")


def time_to_target(
    runs: pd.DataFrame, curves: pd.DataFrame, tolerance: float = DEFAULT_TOLERANCE
) -> pd.DataFrame:
    """Wall-clock seconds until the validation LL first comes within ``tolerance`` nats of the
    best final validation LL reached by any method at that D (per sweep and dataset).

    One row per (sweep, dataset, D, depth, batch size, method): the target, how many trials
    reached it, and the median time over those that did (NaN if none did).
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be non-negative, got {tolerance}")
    keys = [*TARGET_GROUP, *TRIAL_CONFIG]
    columns = [*keys, "target_ll", "best_final_val_ll", "n_trials", "n_reached", "time_to_target_s"]
    curves = scaling_curves(curves)
    ok = runs[(runs["status"] == STATUS_OK) & (runs["kind"] != "hpo") & runs["val_ll"].notna()]
    if ok.empty or curves.empty:
        return pd.DataFrame(columns=columns)
    best = ok.groupby(list(TARGET_GROUP), sort=True)["val_ll"].max().rename("best_final_val_ll")
    rows: list[dict[str, object]] = []
    by_run = dict(tuple(curves.groupby("run_id", sort=False)))
    for key, part in ok.groupby(keys, sort=True):
        labels = dict(zip(keys, key, strict=True))
        best_ll = float(best.loc[tuple(labels[k] for k in TARGET_GROUP)])
        target = best_ll - tolerance
        times = [_first_time_reaching(by_run[r], target) for r in part["run_id"] if r in by_run]
        reached = [t for t in times if np.isfinite(t)]
        rows.append(
            {
                **labels,
                "target_ll": target,
                "best_final_val_ll": best_ll,
                "n_trials": len(part),
                "n_reached": len(reached),
                "time_to_target_s": float(np.median(reached)) if reached else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def hpo_trials(runs: pd.DataFrame) -> pd.DataFrame:
    """Trials of HPO sweeps with their searched hyper-parameters and final val LL."""
    columns = [
        "sweep",
        "method",
        "lr",
        "depth",
        "alpha",
        "batch_size",
        "dim",
        "dataset",
        "val_ll",
        "status",
        "run_id",
    ]
    return runs.loc[runs["kind"] == "hpo", columns].reset_index(drop=True)


def best_configs(runs: pd.DataFrame, best: pd.DataFrame) -> pd.DataFrame:
    """Per HPO sweep and method: the trial with the highest val LL; and the test LL of the
    ``role=best`` retrained run (matched on method when the best run records one)."""
    columns = [
        "sweep",
        "method",
        "lr",
        "depth",
        "alpha",
        "batch_size",
        "val_ll",
        "n_trials",
        "retrained_test_ll",
    ]
    trials = hpo_trials(runs)
    ok = trials[(trials["status"] == STATUS_OK) & trials["val_ll"].notna()]
    if ok.empty:
        return pd.DataFrame(columns=columns)
    rows: list[dict[str, object]] = []
    for (sweep, method), part in ok.groupby(["sweep", "method"], sort=True):
        top = part.loc[part["val_ll"].idxmax()]
        retrained = best[(best["sweep"] == sweep) & (best["role"] == ROLE_BEST)] if not best.empty else best
        if len(retrained) and (retrained["method"] != "unknown").any():
            retrained = retrained[retrained["method"] == method]
        test_ll = float(retrained["test_ll"].iloc[-1]) if len(retrained) else float("nan")
        rows.append(
            {
                "sweep": sweep,
                "method": method,
                "lr": top["lr"],
                "depth": top["depth"],
                "alpha": top["alpha"],
                "batch_size": top["batch_size"],
                "val_ll": top["val_ll"],
                "n_trials": len(part),
                "retrained_test_ll": test_ll,
            }
        )
    return pd.DataFrame(rows, columns=columns).sort_values("val_ll", ascending=False)
