"""Predictions from the fitted cost models: step time and speedup at D the user names, the crossover
D beyond the measured range, and predicted-vs-measured at D the sweep did measure.

Every prediction uses the model the curve's order accepts (:attr:`CostFit.model_coef`: t0 + a·D² for a
quadratic curve, so that a D³ term the order rule rejected is not extrapolated); where the trials
counted their work, that order is the counted one (:attr:`CostFit.model_order`), the headline's.
Intervals come from the bootstrap resamples of each curve's fit (:class:`analysis.cost_model.CostFit`):
a speedup pairs the k-th resample of the baseline with the k-th of the reference, which is a draw from
the product of the two (independent) bootstrap distributions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.arguments import check_int
from analysis.cost_model import ORDER_MIN_DIMS, CostFit, fit_cost_model, percentile_interval
from analysis.cost_tables import GroupFit
from analysis.errors import ReportError
from analysis.schema import CONFIG_GROUP, PAPER_MAX_DIM, PREDICT_EXTEND_FACTOR


def check_predict_dims(dims: Sequence[int] | None) -> list[int] | None:
    """Validate user-given prediction dimensions (positive integers)."""
    if dims is None:
        return None
    out = [check_int(f"predict_dims[{i}]", d) for i, d in enumerate(dims)]
    if not out:
        raise ReportError("predict_dims is empty: give at least one D, or None for the defaults")
    return sorted(set(out))


def default_predict_dims(max_dim: float) -> list[int]:
    """The largest measured D × :data:`PREDICT_EXTEND_FACTOR` and :data:`PAPER_MAX_DIM` (analysis.schema)."""
    return sorted({int(max_dim) * PREDICT_EXTEND_FACTOR, PAPER_MAX_DIM})


def crossover_dim(ref: np.ndarray, base: np.ndarray) -> float:
    """D from which on the reference (coefficients t0, a, c) is faster than the baseline for good:
    the largest positive root of ``t_base − t_ref``; 0 when it is faster at every D > 0, inf never."""
    diff = np.asarray(base, dtype=float) - np.asarray(ref, dtype=float)  # (Δt0, Δa, Δc)
    poly = np.array([diff[2], diff[1], 0.0, diff[0]])
    nz = np.flatnonzero(np.abs(poly) > 0)
    if nz.size == 0:
        return float("inf")
    leading = poly[nz[0]]
    if leading < 0:
        return float("inf")  # the baseline is cheaper at large D
    roots = np.roots(poly[nz[0] :])
    scale = np.abs(roots).max() if roots.size else 1.0
    real = roots[(np.abs(roots.imag) <= 1e-9 * scale) & (roots.real > 0)].real
    return float(real.max()) if real.size else 0.0


def _by_config(groups: list[GroupFit]) -> dict[tuple[object, ...], dict[str, GroupFit]]:
    out: dict[tuple[object, ...], dict[str, GroupFit]] = {}
    for g in groups:
        key = tuple(g.labels[k] for k in CONFIG_GROUP)
        out.setdefault(key, {})[str(g.labels["method"])] = g
    return out


def _paired(a: CostFit, b: CostFit) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(a.model_boot), len(b.model_boot))
    return a.model_boot[:n], b.model_boot[:n]


def prediction_table(groups: list[GroupFit], predict_dims: Sequence[int], reference: str) -> pd.DataFrame:
    """Predicted step time per fitted curve at each D, and the speedup ``t_method / t_reference``."""
    columns = [
        *CONFIG_GROUP,
        "method",
        "dim",
        "measured",
        "t_pred_s",
        "t_low_s",
        "t_high_s",
        "speedup_of_reference",
        "speedup_low",
        "speedup_high",
        "order",
    ]
    rows: list[dict[str, object]] = []
    for key, methods in _by_config(groups).items():
        ref = methods.get(reference)
        for method, g in methods.items():
            if g.fit is None:
                continue
            pred = g.fit.predict_model(predict_dims)
            low, high = g.fit.predict_interval(predict_dims)
            for j, d in enumerate(predict_dims):
                row = dict(zip(CONFIG_GROUP, key, strict=True))
                row.update(method=method, dim=int(d), measured=bool(np.any(g.dims == d)))
                row.update(t_pred_s=float(pred[j]), t_low_s=float(low[j]), t_high_s=float(high[j]))
                row.update(speedup_of_reference=np.nan, speedup_low=np.nan, speedup_high=np.nan)
                if ref is not None and ref.fit is not None and method != reference:
                    r_boot, b_boot = _paired(ref.fit, g.fit)
                    dv = np.array([1.0, float(d) ** 2, float(d) ** 3])
                    ratio = (b_boot @ dv) / np.maximum(r_boot @ dv, 1e-300)
                    s_low, s_high = percentile_interval(ratio, g.fit.level)
                    speed = float(pred[j] / ref.fit.predict_model([d])[0])
                    row.update(speedup_of_reference=speed, speedup_low=s_low, speedup_high=s_high)
                row["order"] = g.model_order
                rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def crossover_predictions(groups: list[GroupFit], reference: str) -> pd.DataFrame:
    """Per configuration and baseline: the crossover D of the fitted models, with its interval."""
    columns = [*CONFIG_GROUP, "baseline", "crossover_pred_dim", "crossover_pred_low", "crossover_pred_high"]
    rows: list[dict[str, object]] = []
    for key, methods in _by_config(groups).items():
        ref = methods.get(reference)
        if ref is None or ref.fit is None:
            continue
        for method, g in methods.items():
            if method == reference or g.fit is None:
                continue
            r_boot, b_boot = _paired(ref.fit, g.fit)
            draws = np.array([crossover_dim(r, b) for r, b in zip(r_boot, b_boot, strict=True)])
            low, high = percentile_interval(draws, g.fit.level)
            row = dict(zip(CONFIG_GROUP, key, strict=True))
            row.update(
                baseline=method, crossover_pred_dim=crossover_dim(ref.fit.model_coef, g.fit.model_coef)
            )
            row.update(crossover_pred_low=low, crossover_pred_high=high)
            rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def holdout_table(
    groups: list[GroupFit], dims: Sequence[int] | None, *, n_boot: int, seed: int
) -> pd.DataFrame:
    """Predicted vs measured: for each curve and each D it measured among ``dims`` (default: its
    largest D), the model fitted on the smaller D only, against the median measurement at that D."""
    columns = [
        *CONFIG_GROUP,
        "method",
        "dim",
        "fitted_on",
        "t_pred_s",
        "t_low_s",
        "t_high_s",
        "t_measured_s",
        "measured_over_pred",
        "inside_interval",
        "note",
    ]
    rows: list[dict[str, object]] = []
    for g in groups:
        if len(g.dims) == 0:
            continue
        targets = [float(g.dims.max())] if dims is None else [float(d) for d in dims if np.any(g.dims == d)]
        for d in targets:
            below = g.dims < d
            row = {k: g.labels[k] for k in CONFIG_GROUP}
            row.update(method=g.labels["method"], dim=int(d))
            measured = float(np.median(g.values[g.dims == d]))
            distinct = np.unique(g.dims[below])
            row.update(fitted_on=f"D {distinct.min():g}–{distinct.max():g}" if distinct.size else "")
            row["t_measured_s"] = measured
            if distinct.size < ORDER_MIN_DIMS:
                row["note"] = f"only {distinct.size} distinct D below {d:g}: no prediction"
                rows.append(row)
                continue
            fit = fit_cost_model(g.dims[below], g.values[below], n_boot=n_boot, seed=seed)
            pred = float(fit.predict_model([d])[0])
            low, high = fit.predict_interval([d])
            row.update(t_pred_s=pred, t_low_s=float(low[0]), t_high_s=float(high[0]))
            row.update(
                measured_over_pred=measured / pred, inside_interval=bool(low[0] <= measured <= high[0])
            )
            row["note"] = ""
            rows.append(row)
    return pd.DataFrame(rows, columns=columns)
