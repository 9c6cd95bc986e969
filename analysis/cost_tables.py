"""Cost models per method × depth × batch size × sweep × device, disturbed timings, and the
per-method order table.

Runtime is fitted on ``sec_per_iter_min`` (the fastest of the timed repeats): contention on a shared
machine only ever adds time, so the minimum is the repeat least touched by other jobs (the argument
``timeit`` makes). Where a run did not log it the group falls back to the median ``sec_per_iter`` and
the ``statistic`` column says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.cost_model import (
    DEFAULT_BOOT,
    MIN_DISTINCT_DIMS,
    ORDER_CUBIC,
    ORDER_NOT_FITTED,
    ORDER_QUADRATIC,
    CostFit,
    fit_cost_model,
    point_fit,
)
from analysis.errors import ReportError
from analysis.schema import (
    DISTURBED_SPREAD,
    FIT_GROUP,
    STATUS_OK,
    TAG_DEVICE_NAME,
    TAG_STATUS,
    TAG_SWEEP,
)

RUNTIME_STAT = "sec_per_iter_min"
RUNTIME_FALLBACK = "sec_per_iter"
MEMORY_STAT = "peak_mem_mb"
STAT_LABEL = {
    "sec_per_iter_min": "min of repeats",
    "sec_per_iter": "median of repeats",
    "peak_mem_mb": "peak memory",
}


@dataclass
class GroupFit:
    """One curve (a method at one depth, batch size, sweep and device) and its cost model."""

    labels: dict[str, object]
    statistic: str
    dims: np.ndarray
    values: np.ndarray
    run_ids: list[str]
    fit: CostFit | None
    reason: str = ""
    flagged: list[str] = field(default_factory=list)  # run ids of disturbed points

    @property
    def order(self) -> str:
        """The timed order (the cost model's)."""
        return ORDER_NOT_FITTED if self.fit is None else self.fit.order

    @property
    def model_order(self) -> str:
        """The order whose model the figures and predictions draw: the counted one where it was set."""
        return ORDER_NOT_FITTED if self.fit is None else self.fit.accepted_order

    def refit_without(self, run_ids: Sequence[str], *, n_boot: int, seed: int) -> tuple[CostFit | None, str]:
        """The cost model without the given points, or ``None`` and why not."""
        keep = np.array([r not in set(run_ids) for r in self.run_ids], dtype=bool)
        try:
            return fit_cost_model(self.dims[keep], self.values[keep], n_boot=n_boot, seed=seed), ""
        except ReportError as err:
            return None, str(err)


def _ok(runs: pd.DataFrame) -> pd.DataFrame:
    if runs.empty or TAG_STATUS not in runs:
        return runs.iloc[0:0]
    return runs[(runs[TAG_STATUS] == STATUS_OK) & runs["dim"].notna()]


def _statistic(part: pd.DataFrame, metric: str, fallback: str | None) -> str:
    """``metric`` if every timed point of the curve has it, else ``fallback``."""
    has = part[metric].notna() if metric in part else pd.Series(False, index=part.index)
    if fallback is None or fallback not in part:
        return metric
    timed = part[fallback].notna()
    return metric if bool(has[timed].all()) and bool(has.any()) else fallback


def fit_groups(
    runs: pd.DataFrame,
    metric: str = RUNTIME_STAT,
    *,
    fallback: str | None = RUNTIME_FALLBACK,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
) -> list[GroupFit]:
    """A cost model per curve; curves that cannot be fitted carry the reason instead."""
    ok = _ok(runs)
    out: list[GroupFit] = []
    if ok.empty:
        return out
    for key, part in ok.groupby(list(FIT_GROUP), sort=True, dropna=False):
        labels = dict(zip(FIT_GROUP, key, strict=True))
        stat = _statistic(part, metric, fallback)
        values = part[stat].to_numpy(dtype=float) if stat in part else np.full(len(part), np.nan)
        keep = np.isfinite(values) & (values > 0)
        dims = part["dim"].to_numpy(dtype=float)
        group = GroupFit(
            labels, stat, dims[keep], values[keep], part["run_id"].astype(str)[keep].tolist(), None
        )
        try:
            if not keep.any():
                raise ReportError(f"no finite {stat} in {len(part)} ok trial(s) (all missing or NaN)")
            group.fit = fit_cost_model(group.dims, group.values, n_boot=n_boot, seed=seed)
        except ReportError as err:
            group.reason = str(err)
        out.append(group)
    return out


def _loo_residual(group: GroupFit, index: int) -> float:
    """|log(t / t̂)| of point ``index`` against the fit without it (inf when that cannot be fitted)."""
    keep = np.arange(len(group.dims)) != index
    try:
        coef = point_fit(group.dims[keep], group.values[keep])
    except ReportError:
        return float("inf")
    d = group.dims[index]
    return float(abs(np.log(group.values[index] / (coef[0] + coef[1] * d**2 + coef[2] * d**3))))


def flag_disturbed(
    groups: list[GroupFit], runs: pd.DataFrame, *, spread_max: float = DISTURBED_SPREAD
) -> pd.DataFrame:
    """Timings that look disturbed, one row per flagged run, and ``group.flagged`` filled in.

    A point is flagged when its spread ``sec_per_iter_iqr / sec_per_iter`` exceeds ``spread_max``, or
    when its curve is non-monotone in D (faster at a larger D): of the two neighbours out of order the
    one farther from the cost model fitted without it is flagged.
    """
    by_run = runs.set_index("run_id") if "run_id" in runs else runs
    rows: list[dict[str, object]] = []
    for group in groups:
        reasons: dict[int, list[str]] = {}
        for i, run_id in enumerate(group.run_ids):
            run = by_run.loc[run_id] if run_id in by_run.index else None
            if run is None:
                continue
            med, iqr = run.get("sec_per_iter", np.nan), run.get("sec_per_iter_iqr", np.nan)
            if np.isfinite(med) and np.isfinite(iqr) and med > 0 and iqr / med > spread_max:
                reasons.setdefault(i, []).append(f"spread IQR/median = {iqr / med:.2f} > {spread_max:g}")
        # Monotonicity on the per-D median over seeds; the candidate is a point at one of the two D.
        dims = np.unique(group.dims)
        med = np.array([np.median(group.values[group.dims == d]) for d in dims])
        for j in np.flatnonzero(np.diff(med) < 0):
            low_d, high_d = dims[j], dims[j + 1]
            cand = [i for i in range(len(group.dims)) if group.dims[i] in (low_d, high_d)]
            if len(dims) > MIN_DISTINCT_DIMS:
                worst = max(cand, key=lambda i: _loo_residual(group, i))
                cand = [i for i in cand if group.dims[i] == group.dims[worst]]
            for i in cand:
                reasons.setdefault(i, []).append(
                    f"non-monotone: {med[j + 1]:.3g} at D = {high_d:g} < {med[j]:.3g} at D = {low_d:g}"
                )
        for i, why in sorted(reasons.items()):
            group.flagged.append(group.run_ids[i])
            run = by_run.loc[group.run_ids[i]]
            rows.append(
                {
                    **group.labels,
                    "dim": int(group.dims[i]),
                    "run_id": group.run_ids[i],
                    "statistic": group.statistic,
                    "value_s": float(group.values[i]),
                    "sec_per_iter": run.get("sec_per_iter", np.nan),
                    "iqr_over_median": _ratio(run.get("sec_per_iter_iqr"), run.get("sec_per_iter")),
                    "load_avg_1m": run.get("load_avg_1m", np.nan),
                    "timing_retimed": run.get("timing_retimed", np.nan),
                    "reason": "; ".join(why),
                }
            )
    columns = [
        *FIT_GROUP,
        "dim",
        "run_id",
        "statistic",
        "value_s",
        "sec_per_iter",
        "iqr_over_median",
        "load_avg_1m",
        "timing_retimed",
        "reason",
    ]
    return pd.DataFrame(rows, columns=columns)


def _ratio(num: object, den: object) -> float:
    try:
        n, d = float(num), float(den)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")
    return n / d if np.isfinite(n) and np.isfinite(d) and d > 0 else float("nan")


def cost_table(
    groups: list[GroupFit], slopes: pd.DataFrame | None = None, *, n_boot: int, seed: int
) -> pd.DataFrame:
    """One row per curve: coefficients with intervals, D³ share and half-D, order, and (when points
    were flagged) the order of the refit without them; the log-log slope as a secondary column."""
    rows: list[dict[str, object]] = []
    for g in groups:
        row: dict[str, object] = {
            **g.labels,
            "statistic": g.statistic,
            "n_points": len(g.dims),
            "n_dims": len(np.unique(g.dims)),
            "min_dim": float(g.dims.min()) if len(g.dims) else np.nan,
            "max_dim": float(g.dims.max()) if len(g.dims) else np.nan,
            "order": g.order,
            "order_reason": g.fit.order_reason if g.fit is not None else "",
            "reason": g.reason,
        }
        f = g.fit
        if f is not None:
            for name in ("t0", "a", "c"):
                low, high = f.interval(name)
                row.update({name: getattr(f, name), f"{name}_low": low, f"{name}_high": high})
            share_low, share_high = f.share_interval(f.max_dim)
            half_low, half_high = f.half_dim_interval()
            row.update(
                d3_share_at_max=float(f.share([f.max_dim])[0]),
                d3_share_low=share_low,
                d3_share_high=share_high,
                half_dim=f.half_dim,
                half_dim_low=half_low,
                half_dim_high=half_high,
            )
        row["n_flagged"] = len(g.flagged)
        row["order_without_flagged"] = ""
        if g.flagged and f is not None:
            refit, why = g.refit_without(g.flagged, n_boot=n_boot, seed=seed)
            row["order_without_flagged"] = refit.order if refit is not None else f"{ORDER_NOT_FITTED} ({why})"
        rows.append(row)
    coef_cols = [f"{n}{s}" for n in ("t0", "a", "c") for s in ("", "_low", "_high")]
    columns = [
        *FIT_GROUP,
        "order",
        "order_reason",
        "statistic",
        *coef_cols,
        "d3_share_at_max",
        "d3_share_low",
        "d3_share_high",
        "half_dim",
        "half_dim_low",
        "half_dim_high",
        "n_points",
        "n_dims",
        "min_dim",
        "max_dim",
        "n_flagged",
        "order_without_flagged",
        "reason",
    ]
    table = pd.DataFrame(rows, columns=columns)
    if slopes is not None and not slopes.empty and not table.empty:
        # The local log-log slope over the upper half of the D: a secondary, range-dependent number.
        side = slopes[[*FIT_GROUP, "k", "ci_low", "ci_high", "fit_min_dim", "fit_max_dim"]].copy()
        side["slope_range"] = [
            f"D {lo:g}–{hi:g}" if np.isfinite(lo) else ""
            for lo, hi in zip(side["fit_min_dim"], side["fit_max_dim"], strict=True)
        ]
        side = side.rename(columns={"k": "slope", "ci_low": "slope_low", "ci_high": "slope_high"})
        side = side.drop(columns=["fit_min_dim", "fit_max_dim"])
        table = table.merge(side, on=list(FIT_GROUP), how="left")
    return table


def share_table(groups: list[GroupFit]) -> pd.DataFrame:
    """D³ share ``c·D³ / t(D)`` with its interval at every measured D of every fitted curve."""
    rows: list[dict[str, object]] = []
    for g in groups:
        if g.fit is None:
            continue
        for d in g.fit.dims:
            low, high = g.fit.share_interval(d)
            rows.append(
                {**g.labels, "dim": int(d), "d3_share": float(g.fit.share([d])[0]), "low": low, "high": high}
            )
    return pd.DataFrame(rows, columns=[*FIT_GROUP, "dim", "d3_share", "low", "high"])


def method_orders(table: pd.DataFrame) -> pd.DataFrame:
    """Per sweep × device × method: ``cubic`` if any of its fitted curves is cubic (a material D³ term
    seen at some batch size and depth), ``quadratic`` if all fitted ones are, else ``not fitted``;
    with the evidence of the curve that reached the largest D (then the largest D³ share)."""
    columns = [
        TAG_SWEEP,
        TAG_DEVICE_NAME,
        "method",
        "order",
        "n_groups",
        "n_cubic",
        "depth",
        "batch_size",
        "max_dim",
        "c",
        "c_low",
        "c_high",
        "d3_share_at_max",
        "half_dim",
        "half_dim_low",
        "half_dim_high",
        "order_reason",
        "reason",
    ]
    rows: list[dict[str, object]] = []
    for (sweep, device, method), part in table.groupby([TAG_SWEEP, TAG_DEVICE_NAME, "method"], sort=True):
        fitted = part[part["order"] != ORDER_NOT_FITTED]
        n_cubic = int((fitted["order"] == ORDER_CUBIC).sum())
        if fitted.empty:
            order, best = ORDER_NOT_FITTED, part.iloc[0]
        else:
            order = ORDER_CUBIC if n_cubic else ORDER_QUADRATIC
            pool = fitted[fitted["order"] == order]
            best = pool.sort_values(["max_dim", "d3_share_at_max"], ascending=False).iloc[0]
        row = {TAG_SWEEP: sweep, TAG_DEVICE_NAME: device, "method": method, "order": order}
        row.update(n_groups=len(part), n_cubic=n_cubic)
        row.update({k: best.get(k, np.nan) for k in columns[6:]})
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)
