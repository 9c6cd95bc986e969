"""The paper's second claim, measured: the likelihood each method reaches at convergence and how soon.

On ``teacher`` data the true density is known, so ``kl_gap = true_test_ll − test_ll`` estimates
KL(p_true ‖ p_model) ≥ 0 (nats per sample). A fit counts as *converged* when early stopping (patience)
ended it, or a cap ended it after the validation LL had stopped improving; a fit cut by its budget while
still improving (``stopped_reason`` ending in :data:`analysis.schema.STILL_IMPROVING`) has not reached its
method's optimum, so its likelihood says nothing about the method.

- :func:`trial_outcomes`: one row per trial, its KL gap (also per dimension, nats / D, so that D's
  compare), gain over the Gaussian yardstick, and whether its fit converged.
- :func:`kl_at_convergence`: per D and method, the median KL gap over seeds with [min, max].
- :func:`paired_difference`: ``relative − ordinary`` per seed (same data, teacher and initialisation),
  the mean difference with its 95% t-interval.
- :func:`time_to_target`: per trial, the training wall-clock at which the validation LL first reaches
  within ``nats`` of the best any method reached at that D and seed, and stays there.

The ``mlp`` floor trains the data term only (no log-determinant): it is not a density model, and is left
out of every likelihood comparison here. Several learning rates of one method: the one with the best
validation LL is kept per (D, seed), i.e. the learning rate is selected on validation, never on test.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
from scipy import stats

from analysis.arguments import check_nonnegative
from analysis.render import sig3
from analysis.schema import (
    FLOOR_METHOD,
    KIND_HPO,
    REFERENCE_METHOD,
    STATUS_OK,
    STILL_IMPROVING,
    TAG_KIND,
    TAG_STATUS,
    TAG_STATUS_REASON,
    TAG_STOPPED_REASON,
    TAG_SWEEP,
    method_sort_key,
)

#: Nats below the best validation LL at a D that count as "reached" (a difference a reader would call
#: the same model quality at any D of the learning preset; the per-D best is a converged fit there).
TARGET_NATS = 1.0
#: The exact gradient the relative gradient is paired with.
PAIRED_BASELINE = "ordinary"
GROUP: tuple[str, ...] = (TAG_SWEEP, "dataset", "dim", "depth", "batch_size")
_STOPPED = re.compile(r"stopped by (.+?)(?:;|$)")


def stopped_reasons(runs: pd.DataFrame) -> pd.Series:
    """Each trial's ``stopped_reason`` tag; for runs from before the tag, parsed from ``status_reason``."""
    tag = runs[TAG_STOPPED_REASON] if TAG_STOPPED_REASON in runs else pd.Series("", index=runs.index)
    parsed = runs[TAG_STATUS_REASON].fillna("").astype(str).str.extract(_STOPPED, expand=False).fillna("")
    return tag.fillna("").astype(str).where(tag.fillna("") != "", parsed)


def still_improving(runs: pd.DataFrame) -> pd.Series:
    """True for trials whose fit a cap (epochs, steps, time budget) cut while the validation LL still
    improved: not converged, so their likelihood does not compare across methods."""
    return stopped_reasons(runs).str.endswith(STILL_IMPROVING)


def trial_outcomes(runs: pd.DataFrame, curves: pd.DataFrame | None = None) -> pd.DataFrame:
    """Ok non-HPO trials of density models (``mlp`` left out), one learning rate per (D, seed, method).

    Columns: the group keys, ``method, seed, lr, run_id, kl_gap, kl_gap_per_dim, gain_over_gaussian,
    best_val_ll, stopped_reason, still_improving``. ``best_val_ll`` is the best validation LL of the
    curve (the weights fit keeps), else the last one logged.
    """
    columns = [*GROUP, "method", "seed", "lr", "run_id", "kl_gap", "kl_gap_per_dim", "gain_over_gaussian"]
    columns += ["best_val_ll", TAG_STOPPED_REASON, "still_improving"]
    ok = runs[
        (runs[TAG_STATUS] == STATUS_OK) & (runs[TAG_KIND] != KIND_HPO) & (runs["method"] != FLOOR_METHOD)
    ]
    if ok.empty:
        return pd.DataFrame(columns=columns)
    out = ok.copy()
    out["kl_gap"] = out["true_test_ll"] - out["test_ll"]
    out["kl_gap_per_dim"] = out["kl_gap"] / out["dim"].astype(float)
    out["gain_over_gaussian"] = out["test_ll"] - out["gaussian_test_ll"]
    out["best_val_ll"] = out["val_ll"]
    if curves is not None and len(curves):
        best = curves.groupby("run_id")["val_ll"].max()
        out["best_val_ll"] = out["run_id"].map(best).fillna(out["val_ll"])
    out[TAG_STOPPED_REASON] = stopped_reasons(out)
    out["still_improving"] = still_improving(out)
    out["seed"] = out["seed"].fillna(0)
    # one learning rate per (group, method, seed): the best on validation
    out = out.sort_values("best_val_ll", ascending=False, kind="stable")
    out = out.drop_duplicates([*GROUP, "method", "seed"], keep="first")
    return out[columns].sort_values([*GROUP, "method", "seed"]).reset_index(drop=True)


def _spread(values: pd.Series) -> dict[str, float]:
    clean = values.dropna()
    if clean.empty:
        return {"median": math.nan, "min": math.nan, "max": math.nan}
    return {"median": float(clean.median()), "min": float(clean.min()), "max": float(clean.max())}


def kl_at_convergence(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Per group and method: median [min, max] over the seeds whose fit converged of the KL gap, the KL gap
    per dimension and the gain over the Gaussian; ``n`` seeds, ``n_cut`` cut while still improving."""
    keys = [*GROUP, "method"]
    columns = [*keys, "n", "n_cut"]
    for value in ("kl_gap", "kl_gap_per_dim", "gain_over_gaussian"):
        columns += [f"{value}_median", f"{value}_min", f"{value}_max"]
    rows = []
    for key, part in outcomes.groupby(keys, sort=True):
        converged = part[~part["still_improving"].astype(bool)]
        row: dict[str, object] = dict(zip(keys, key, strict=True))
        row |= {"n": len(converged), "n_cut": int(part["still_improving"].astype(bool).sum())}
        for value in ("kl_gap", "kl_gap_per_dim", "gain_over_gaussian"):
            row |= {f"{value}_{k}": v for k, v in _spread(converged[value]).items()}
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def mean_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and its two-sided ``level`` t-interval (n − 1 degrees of freedom); NaN interval for n < 2."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean()) if len(values) else math.nan
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, mean - half, mean + half


def paired_difference(
    outcomes: pd.DataFrame,
    value: str = "kl_gap",
    method: str = REFERENCE_METHOD,
    baseline: str = PAIRED_BASELINE,
) -> pd.DataFrame:
    """``method − baseline`` of ``value`` per group, paired by seed over the seeds where both converged.

    Columns: group keys, ``n_pairs``, ``mean_diff`` with its 95% t-interval ``ci_low, ci_high``, and the
    smallest and largest paired difference. A negative KL-gap difference: ``method`` got closer to the truth.
    """
    columns = [*GROUP, "n_pairs", "mean_diff", "ci_low", "ci_high", "min_diff", "max_diff"]
    usable = outcomes[~outcomes["still_improving"].astype(bool) & outcomes[value].notna()]
    rows = []
    for key, part in usable.groupby(list(GROUP), sort=True):
        wide = part.pivot_table(index="seed", columns="method", values=value, aggfunc="first")
        if method not in wide or baseline not in wide:
            continue
        diff = (wide[method] - wide[baseline]).dropna().to_numpy()
        if not len(diff):
            continue
        mean, low, high = mean_interval(diff)
        rows.append(
            dict(zip(GROUP, key, strict=True))
            | {
                "n_pairs": len(diff),
                "mean_diff": mean,
                "ci_low": low,
                "ci_high": high,
                "min_diff": float(diff.min()),
                "max_diff": float(diff.max()),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def reaches_and_stays(curve: pd.DataFrame, target: float) -> float:
    """Training seconds at the first evaluation from which the validation LL stays ≥ ``target`` up to the
    curve's best evaluation (the weights fit keeps; later evaluations only ran out patience); NaN if never."""
    curve = curve.sort_values("train_time_s")
    ll = curve["val_ll"].to_numpy(dtype=float)
    times = curve["train_time_s"].to_numpy(dtype=float)
    if not len(ll) or not np.isfinite(ll).any() or np.nanmax(ll) < target:
        return math.nan
    kept = int(np.nanargmax(ll))
    below = np.flatnonzero(~(ll[: kept + 1] >= target))
    first = int(below[-1]) + 1 if len(below) else 0
    return float(times[first])


def time_to_target(outcomes: pd.DataFrame, curves: pd.DataFrame, nats: float = TARGET_NATS) -> pd.DataFrame:
    """Per trial: ``target_ll`` = best validation LL any method reached at its D and seed − ``nats``, and
    ``time_to_target_s`` (:func:`reaches_and_stays`; NaN when it never did)."""
    nats = check_nonnegative("nats", nats, " of nats")
    columns = [*GROUP, "method", "seed", "run_id", "target_ll", "time_to_target_s"]
    if outcomes.empty or curves.empty:
        return pd.DataFrame(columns=columns)
    by_run = dict(tuple(curves.groupby("run_id", sort=False)))
    best = outcomes.groupby([*GROUP, "seed"])["best_val_ll"].transform("max")
    out = outcomes.assign(target_ll=best - nats)
    out["time_to_target_s"] = [
        reaches_and_stays(by_run[r], t) if r in by_run else math.nan
        for r, t in zip(out["run_id"], out["target_ll"], strict=True)
    ]
    return out[columns].reset_index(drop=True)


def first_to_target(times: pd.DataFrame) -> pd.DataFrame:
    """Per group and method: median [min, max] over seeds of the time to target, ``n_reached`` of ``n``,
    and ``first``: how many seeds this method reached the target first in (ties count for each)."""
    keys = [*GROUP, "method"]
    columns = [*keys, "n", "n_reached", "time_median", "time_min", "time_max", "first"]
    if times.empty:
        return pd.DataFrame(columns=columns)
    fastest = times.groupby([*GROUP, "seed"])["time_to_target_s"].transform("min")
    won = times["time_to_target_s"].notna() & (times["time_to_target_s"] <= fastest)
    rows = []
    for key, part in times.assign(won=won).groupby(keys, sort=True):
        spread = _spread(part["time_to_target_s"])
        rows.append(
            dict(zip(keys, key, strict=True))
            | {
                "n": len(part),
                "n_reached": int(part["time_to_target_s"].notna().sum()),
                "time_median": spread["median"],
                "time_min": spread["min"],
                "time_max": spread["max"],
                "first": int(part["won"].sum()),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def _spread_text(row: pd.Series, prefix: str) -> str:
    median, low, high = row[f"{prefix}_median"], row[f"{prefix}_min"], row[f"{prefix}_max"]
    if row["n"] > 1:
        return f"{sig3(median)} [{sig3(low)}, {sig3(high)}]"
    return sig3(median)


def headline_lines(kl: pd.DataFrame, paired: pd.DataFrame, first: pd.DataFrame) -> list[str]:
    """Per D (and curve configuration): the KL gap at convergence of each method with its seed range, the
    paired difference relative − ordinary with its 95% interval, and which method came within
    :data:`TARGET_NATS` of the best first. Empty without a D where a method converged on teacher data."""
    lines: list[str] = []
    usable = kl[kl["kl_gap_median"].notna()]
    configs = usable.groupby([k for k in GROUP if k != "dim"], sort=True)
    several = configs.ngroups > 1
    for config, part in configs:
        for dim, rows in part.groupby("dim", sort=True):
            rows = rows.sort_values("method", key=lambda c: c.map(method_sort_key))
            gaps = ", ".join(f"{r['method']} {_spread_text(r, 'kl_gap')}" for _, r in rows.iterrows())
            where = f"{' '.join(map(str, config))} " if several else ""
            line = f"{where}D = {dim}: KL gap at convergence {gaps} nats"
            keys = dict(zip([k for k in GROUP if k != "dim"], config, strict=True)) | {"dim": dim}
            pair = _match(paired, keys)
            if len(pair):
                p = pair.iloc[0]
                interval = f" [{sig3(p['ci_low'])}, {sig3(p['ci_high'])}]" if np.isfinite(p["ci_low"]) else ""
                difference = f"{REFERENCE_METHOD} − {PAIRED_BASELINE} {sig3(p['mean_diff'])}{interval}"
                line += f"; {difference} ({int(p['n_pairs'])} seeds)"
            line += _first_text(_match(first, keys))
            lines.append(line)
    return lines


def _match(frame: pd.DataFrame, keys: dict[str, object]) -> pd.DataFrame:
    if frame.empty:
        return frame
    mask = np.ones(len(frame), dtype=bool)
    for key, value in keys.items():
        mask &= (frame[key] == value).to_numpy()
    return frame[mask]


def _first_text(first: pd.DataFrame) -> str:
    """``; first within 1 nat of the best: relative (3 of 3 seeds; median 2.1 s; lu never)``."""
    first = first.sort_values("method", key=lambda c: c.map(method_sort_key), kind="stable")
    reached = first[first["n_reached"] > 0]
    if reached.empty:
        return f"; no method came within {TARGET_NATS:g} nat of the best and stayed"
    top = reached.sort_values(["first", "time_median"], ascending=[False, True], kind="stable").iloc[0]
    others = [
        f"{r['method']} {sig3(r['time_median'])} s" if r["n_reached"] else f"{r['method']} never"
        for _, r in first.iterrows()
        if r["method"] != top["method"]
    ]
    return (
        f"; first within {TARGET_NATS:g} nat of the best: {top['method']} ({int(top['first'])} of "
        f"{int(top['n'])} seeds; median {sig3(top['time_median'])} s"
        + "".join(f"; {o}" for o in others)
        + ")"
    )
