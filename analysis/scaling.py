"""Local log-log slopes of runtime and memory in D, speedups, crossovers, overhead over the MLP.

The slope ``k`` in ``t ≈ c·Dᵏ`` is the least-squares slope of ``log t`` on ``log D`` over the
large-D range ``D ≥ threshold``. It is a secondary, range-dependent number: small D are dominated by
fixed per-step overheads and B·D² products, which flatten it, so the order of a method's cost comes
from the cost model of :mod:`analysis.cost_model` instead. Its 95% interval is a seeded percentile
bootstrap over the (D, t) points in that range, widened by √(n/(n−2)) for the two fitted parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.arguments import check_bootstrap
from analysis.cost_model import check_points
from analysis.errors import ReportError
from analysis.schema import (
    CONFIG_GROUP,
    FIT_GROUP,
    FLOOR_METHOD,
    REFERENCE_METHOD,
    STATUS_OK,
    TAG_DEVICE_NAME,
    TAG_STATUS,
    TAG_SWEEP,
)

#: Below this exponent a method is called quadratic, above CUBIC_MIN cubic.
QUADRATIC_MAX = 2.3
CUBIC_MIN = 2.7
#: Exponents below / above these are labelled as outside the quadratic…cubic range.
SUBQUADRATIC_MAX = 1.7
SUPERCUBIC_MIN = 3.3
#: Fewest distinct D a slope is fitted on: two parameters (k, log c) and at least one residual, which
#: the interval's widening √(n/(n−2)) needs.
SLOPE_MIN_DIMS = 3


@dataclass(frozen=True)
class ExponentFit:
    """Result of :func:`fit_exponent`: ``value ≈ exp(log_c) · Dᵏ`` on ``[min_dim, max_dim]``."""

    k: float
    ci_low: float
    ci_high: float
    log_c: float
    n_points: int
    n_dims: int
    min_dim: float
    max_dim: float
    r2: float

    def predict(self, dims: Sequence[float] | np.ndarray) -> np.ndarray:
        """The fitted power law at the given dimensions."""
        return np.exp(self.log_c) * np.asarray(dims, dtype=float) ** self.k


def verdict(k: float) -> str:
    """Name the growth class of an exponent (thresholds: module constants)."""
    if not np.isfinite(k):
        return "not fitted"
    if k < SUBQUADRATIC_MAX:
        return "sub-quadratic"
    if k < QUADRATIC_MAX:
        return "quadratic"
    if k <= CUBIC_MIN:
        return "between quadratic and cubic"
    if k <= SUPERCUBIC_MIN:
        return "cubic"
    return "super-cubic"


def verdict_rule() -> str:
    """The verdict thresholds in words, for the report."""
    return (
        f"k < {SUBQUADRATIC_MAX}: sub-quadratic; {SUBQUADRATIC_MAX} ≤ k < {QUADRATIC_MAX}: "
        f"quadratic; {QUADRATIC_MAX} ≤ k ≤ {CUBIC_MIN}: between; {CUBIC_MIN} < k ≤ "
        f"{SUPERCUBIC_MIN}: cubic; k > {SUPERCUBIC_MIN}: super-cubic"
    )


def default_min_dim(dims: Sequence[float] | np.ndarray) -> float:
    """Default fit threshold: the upper half of the distinct D values (at least three of them)."""
    distinct = np.unique(np.asarray(dims, dtype=float))
    if len(distinct) < SLOPE_MIN_DIMS:
        raise ReportError(
            f"need at least {SLOPE_MIN_DIMS} distinct D to fit an exponent, got "
            f"{len(distinct)}: {distinct.tolist()}"
        )
    start = min(len(distinct) // 2, len(distinct) - SLOPE_MIN_DIMS)
    return float(distinct[start])


def _slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slopes of each row of ``y`` on the matching row of ``x`` (NaN if x is flat)."""
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    sxx = (xc * xc).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sxx > 1e-12, (xc * yc).sum(axis=-1) / sxx, np.nan)


def fit_exponent(
    dims: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    *,
    min_dim: float | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> ExponentFit:
    """Fit ``values ∝ dimsᵏ`` by least squares in log-log over ``dims ≥ min_dim``.

    Args:
        dims, values: one point per measurement (repeated D allowed: seeds, repeats).
        min_dim: fit threshold; default :func:`default_min_dim` of the distinct ``dims``.
        n_boot: bootstrap resamples of the points in the fit range.
        level: coverage of the percentile interval.
        seed: seed of the bootstrap, so that reports are reproducible.

    Raises:
        ReportError: mismatched lengths, non-positive or non-finite values, or fewer than three
            distinct D in the fit range.
    """
    d, v = check_points(dims, values, min_dims=1, fitting="an exponent")
    check_bootstrap(n_boot, level)
    threshold = default_min_dim(d) if min_dim is None else float(min_dim)
    keep = d >= threshold
    distinct = np.unique(d[keep])
    if len(distinct) < SLOPE_MIN_DIMS:
        raise ReportError(
            f"need at least {SLOPE_MIN_DIMS} distinct D ≥ {threshold:g} to fit an exponent, "
            f"got {len(distinct)}: {distinct.tolist()}"
        )
    x, y = np.log(d[keep]), np.log(v[keep])
    k = float(_slopes(x, y))
    log_c = float(y.mean() - k * x.mean())
    resid = y - (log_c + k * x)
    sst = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / sst if sst > 0 else 1.0
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    boot = _slopes(x[idx], y[idx])
    boot = boot[np.isfinite(boot)]  # resamples that drew a single D carry no slope
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(boot, [tail, 100 - tail])
    # The bootstrap spread of a two-parameter fit is biased low by about (n − 2)/n in variance;
    # widening by √(n / (n − 2)) keeps fits over a handful of points from being over-confident.
    widen = np.sqrt(x.size / (x.size - 2))
    low, high = k - (k - low) * widen, k + (high - k) * widen
    return ExponentFit(
        k=k,
        ci_low=float(low),
        ci_high=float(high),
        log_c=log_c,
        n_points=int(x.size),
        n_dims=len(distinct),
        min_dim=float(distinct[0]),
        max_dim=float(distinct[-1]),
        r2=r2,
    )


def _usable(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """`ok` trials with a positive, finite value of ``metric`` and a known D."""
    if metric not in runs:
        return runs.iloc[0:0]
    ok = runs[(runs[TAG_STATUS] == STATUS_OK) & runs["dim"].notna()]
    value = ok[metric]
    return ok[value.notna() & np.isfinite(value) & (value > 0)]


def sweep_thresholds(
    runs: pd.DataFrame, metric: str = "sec_per_iter", min_dim: int | None = None
) -> dict[str, float]:
    """Fit threshold per sweep: ``min_dim`` if given, else the upper half of its distinct D."""
    out: dict[str, float] = {}
    for sweep, part in _usable(runs, metric).groupby(TAG_SWEEP, sort=True):
        dims = part["dim"].astype(float).to_numpy()
        if min_dim is not None:
            out[str(sweep)] = float(min_dim)
        elif len(np.unique(dims)) >= SLOPE_MIN_DIMS:
            out[str(sweep)] = default_min_dim(dims)
    return out


def fit_table(
    runs: pd.DataFrame,
    metric: str = "sec_per_iter",
    *,
    min_dim: int | None = None,
    group: Sequence[str] = FIT_GROUP,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Exponent of ``metric`` in D for every ``group`` (method × depth × batch size × machine).

    The threshold is per sweep (:func:`sweep_thresholds`). When a group ran fewer than three
    distinct D above the default threshold (baselines skipped at large D for time budget), its
    largest three D are used instead and the ``note`` says so; an explicit ``min_dim`` is kept.
    Groups that still cannot be fitted get ``k = NaN`` and the reason in ``note``.
    """
    usable = _usable(runs, metric)
    thresholds = sweep_thresholds(runs, metric, min_dim)
    columns = [
        *group,
        "metric",
        "k",
        "ci_low",
        "ci_high",
        "verdict",
        "n_points",
        "n_dims",
        "fit_min_dim",
        "fit_max_dim",
        "threshold",
        "r2",
        "log_c",
        "note",
    ]
    rows: list[dict[str, object]] = []
    for key, part in usable.groupby(list(group), sort=True, dropna=False):
        labels = dict(zip(group, key if isinstance(key, tuple) else (key,), strict=True))
        dims = part["dim"].astype(float).to_numpy()
        vals = part[metric].to_numpy(dtype=float)
        sweep = str(labels.get(TAG_SWEEP, ""))
        threshold = thresholds.get(sweep, float("nan"))
        distinct = np.unique(dims)
        note = ""
        fit_from = threshold
        above = distinct[distinct >= threshold] if np.isfinite(threshold) else distinct[:0]
        if len(above) < SLOPE_MIN_DIMS and min_dim is None and len(distinct) >= SLOPE_MIN_DIMS:
            fit_from = float(distinct[-SLOPE_MIN_DIMS])
            note = f"only {len(above)} D ≥ {threshold:g} ran; fitted over its largest {SLOPE_MIN_DIMS} D"
        row: dict[str, object] = {**labels, "metric": metric, "threshold": threshold}
        try:
            fit = fit_exponent(dims, vals, min_dim=fit_from, n_boot=n_boot, seed=seed)
        except ReportError as err:
            row.update(k=float("nan"), ci_low=float("nan"), ci_high=float("nan"))
            row.update(verdict="not fitted", note=str(err), n_points=len(dims))
            row.update(n_dims=len(distinct), fit_min_dim=float("nan"), fit_max_dim=float("nan"))
            row.update(r2=float("nan"), log_c=float("nan"))
        else:
            row.update(k=fit.k, ci_low=fit.ci_low, ci_high=fit.ci_high, verdict=verdict(fit.k))
            row.update(n_points=fit.n_points, n_dims=fit.n_dims, fit_min_dim=fit.min_dim)
            row.update(fit_max_dim=fit.max_dim, r2=fit.r2, log_c=fit.log_c, note=note)
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def method_verdicts(fits: pd.DataFrame) -> pd.DataFrame:
    """One line per (sweep, machine, method): median exponent over its depth × batch groups,
    the widest interval among them and the verdict of the median."""
    columns = [TAG_SWEEP, TAG_DEVICE_NAME, "method", "k_median", "ci_low", "ci_high", "n_groups"]
    fitted = fits[fits["k"].notna()]
    if fitted.empty:
        return pd.DataFrame(columns=[*columns, "verdict"])
    out = (
        fitted.groupby([TAG_SWEEP, TAG_DEVICE_NAME, "method"], sort=True)
        .agg(
            k_median=("k", "median"),
            ci_low=("ci_low", "min"),
            ci_high=("ci_high", "max"),
            n_groups=("k", "size"),
        )
        .reset_index()
    )
    out["verdict"] = out["k_median"].map(verdict)
    return out


def median_times(runs: pd.DataFrame, metric: str = "sec_per_iter") -> pd.DataFrame:
    """Median of ``metric`` over seeds for every configuration and D (with min, max, count)."""
    usable = _usable(runs, metric)
    keys = [*CONFIG_GROUP, "method", "dim"]
    if usable.empty:
        return pd.DataFrame(columns=[*keys, "median", "min", "max", "n"])
    return (
        usable.groupby(keys, sort=True)[metric]
        .agg(median="median", min="min", max="max", n="size")
        .reset_index()
    )


def speedup_table(
    runs: pd.DataFrame, reference: str = REFERENCE_METHOD, metric: str = "sec_per_iter"
) -> pd.DataFrame:
    """``speedup = t_baseline / t_reference`` per configuration and D (> 1: reference faster).

    Times are medians over seeds; only D where both methods have an ``ok`` timing appear.
    """
    med = median_times(runs, metric)
    columns = [*CONFIG_GROUP, "dim", "baseline", "t_baseline_s", "t_reference_s", "speedup"]
    ref = med[med["method"] == reference]
    base = med[med["method"] != reference]
    if ref.empty or base.empty:
        return pd.DataFrame(columns=columns)
    keys = [*CONFIG_GROUP, "dim"]
    both = base.merge(ref[[*keys, "median"]], on=keys, suffixes=("_baseline", "_reference"))
    both = both.rename(
        columns={
            "method": "baseline",
            "median_baseline": "t_baseline_s",
            "median_reference": "t_reference_s",
        }
    )
    both["speedup"] = both["t_baseline_s"] / both["t_reference_s"]
    return both[columns].sort_values([*CONFIG_GROUP, "baseline", "dim"]).reset_index(drop=True)


def _crossing(dims: np.ndarray, speedup: np.ndarray) -> tuple[float, str]:
    """D from which on the reference stays faster (speedup > 1), interpolated in log-log."""
    faster = speedup > 1
    if faster.all():
        return float("nan"), f"always (faster at every measured D, {dims[0]:g} to {dims[-1]:g})"
    if not faster[-1]:
        return float("nan"), f"never in range (not faster at the largest D = {dims[-1]:g})"
    i = int(np.flatnonzero(~faster)[-1])  # last D where the reference was not faster
    x0, x1 = np.log(dims[i]), np.log(dims[i + 1])
    y0, y1 = np.log(speedup[i]), np.log(speedup[i + 1])
    cross = float(np.exp(x0 + (0.0 - y0) * (x1 - x0) / (y1 - y0))) if y1 != y0 else dims[i + 1]
    return cross, f"from D ≈ {cross:.0f}"


def crossover_table(speedups: pd.DataFrame) -> pd.DataFrame:
    """Per configuration and baseline (from :func:`speedup_table`): the D beyond which the
    reference method is faster, or ``always`` / ``never in range``."""
    columns = [
        *CONFIG_GROUP,
        "baseline",
        "crossover_dim",
        "crossover",
        "dims_compared",
        "speedup_at_max_dim",
        "max_dim",
    ]
    rows: list[dict[str, object]] = []
    if speedups.empty:
        return pd.DataFrame(columns=columns)
    for key, part in speedups.groupby([*CONFIG_GROUP, "baseline"], sort=True):
        part = part.sort_values("dim")
        dims = part["dim"].astype(float).to_numpy()
        ratio = part["speedup"].to_numpy(dtype=float)
        cross, text = _crossing(dims, ratio)
        row = dict(zip([*CONFIG_GROUP, "baseline"], key, strict=True))
        row.update(
            crossover_dim=cross,
            crossover=text,
            dims_compared=len(dims),
            speedup_at_max_dim=float(ratio[-1]),
            max_dim=int(dims[-1]),
        )
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def overhead_table(
    runs: pd.DataFrame,
    reference: str = REFERENCE_METHOD,
    floor: str = FLOOR_METHOD,
    metric: str = "sec_per_iter",
    peaks: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """``t_reference / t_floor`` per configuration and D, next to the matrix-FLOP ratio the reference's
    runs logged (``flop_ratio``, from the core's method registry); NaN for runs that predate it. Where the
    runs counted their work: each method's achieved GFLOP/s (median ``flops_per_step`` over its median
    time) and the reference's ``pct_of_peak``, its share of the sweep's measured matmul peak (``peaks``)."""
    columns = [
        *CONFIG_GROUP,
        "dim",
        "t_reference_s",
        "t_mlp_s",
        "overhead",
        "flop_floor",
        "gflops_reference",
        "gflops_mlp",
        "pct_of_peak",
    ]
    speedups = speedup_table(runs, reference, metric)
    part = speedups[speedups["baseline"] == floor]
    if part.empty:
        return pd.DataFrame(columns=columns)
    out = part.rename(columns={"t_baseline_s": "t_mlp_s"}).copy()
    out["overhead"] = out["t_reference_s"] / out["t_mlp_s"]
    keys = [*CONFIG_GROUP, "dim"]
    usable = _usable(runs, metric)
    for name, column in (
        ("flop_ratio", "flop_floor"),
        ("flops_per_step", "flops_ref"),
        ("flops_per_step", "flops_mlp"),
    ):
        method = floor if column == "flops_mlp" else reference
        if name in usable:
            rows = usable[usable["method"] == method]
            logged = rows.groupby(keys, sort=True)[name].median().rename(column).reset_index()
            out = out.merge(logged, on=keys, how="left")
        else:
            out[column] = float("nan")
    out["gflops_reference"] = out["flops_ref"] / out["t_reference_s"] / 1e9
    out["gflops_mlp"] = out["flops_mlp"] / out["t_mlp_s"] / 1e9
    out["pct_of_peak"] = 100.0 * out["gflops_reference"] / out[TAG_SWEEP].map(dict(peaks or {})).astype(float)
    return out[columns].reset_index(drop=True)
