"""The order of a method's cost from its counted work: an exact polynomial in D, without noise or a clock.

Every trial logs the FLOPs of one training step at its D, B and depth (``flops_per_step``, counted by
``relgrad_core.counting``). At a fixed batch size and depth that count is a polynomial in D of degree at most
three — products cost B·D² or D³, decompositions D³, matrix-vector work B·D — so **four distinct D determine
it** (four coefficients c0…c3, exact interpolation) and each further D **confirms** it: its count must lie on
that cubic. The order is then a fact, not a test: ``cubic`` when the D³ coefficient c3 is non-zero, else
``quadratic``; ``not fitted`` (with the reason) below four D, when the counts at one D disagree, or when a
further D is off the cubic (work growing faster than D³, or an architecture that changes with D, such as
zuko's MAF whose hidden width is max(D, 64): with exactly four D nothing can confirm the cubic, so a grid
that straddles such a change needs a fifth D to be caught).

"Non-zero" allows for the counts being float64 sums of fractional terms (⅔·n³): each logged count is taken
as exact to a relative :data:`COUNT_PRECISION`, and c3 counts as zero when it lies within what that
uncertainty can move it, ``COUNT_PRECISION · Σ_i |f_i| / Π_{j≠i} |D_i − D_j|`` (c3 is the third divided
difference ``Σ_i f_i / Π_{j≠i}(D_i − D_j)`` over the four interpolation nodes). The arithmetic itself is
exact (:class:`fractions.Fraction` on the logged floats), so only the logged values' own rounding matters.
On a geometric grid (D = 8…64) the bound is ~10⁻¹² of the count; a cubic method's c3 is ~10⁻¹ of it.

Beside it: the achieved rate ``flops_per_step / sec_per_iter_min`` (GFLOP/s) at each measured D and its
share of the sweep's measured matrix-multiply peak, the evidence when the timed order disagrees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd

from analysis.cost_model import ORDER_CUBIC, ORDER_NOT_FITTED, ORDER_QUADRATIC
from analysis.schema import (
    FIT_GROUP,
    STATUS_OK,
    TAG_DEVICE_NAME,
    TAG_STATUS,
    TAG_SWEEP,
    TAG_UNCOUNTED_OPS,
)

COUNTED_METRIC = "flops_per_step"
CUBIC_METRIC = "flops_cubic_per_step"
BYTES_METRIC = "bytes_per_step"
METHOD_GROUP: tuple[str, ...] = (TAG_SWEEP, TAG_DEVICE_NAME, "method")
#: Relative precision to which a logged FLOP count is taken as exact (float64 sums of ⅔·n³-like terms).
COUNT_PRECISION = 1e-12
#: Distinct D that determine a cubic in D.
COUNTED_MIN_DIMS = 4
#: What the headline calls a timed "cubic" that the count calls quadratic, and the converse.
REGIME_CHANGE = "hardware regime change"
HIDDEN_D3 = "D³ work below the timing's resolution"


@dataclass(frozen=True)
class CountedFit:
    """The cubic ``c0 + c1·D + c2·D² + c3·D³`` through four counted points, and the order it implies."""

    dims: tuple[float, ...]  # distinct D with a count, ascending
    counts: tuple[float, ...]  # the count at each
    order: str
    reason: str = ""  # why not fitted, or "" when fitted
    coef: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    nodes: tuple[float, ...] = ()  # the four D the cubic goes through
    c3_bound: float = 0.0  # |c3| below this is zero (see module docstring)
    confirmed_at: tuple[float, ...] = ()  # further D whose counts lie on the cubic

    @property
    def max_dim(self) -> float:
        return self.dims[-1] if self.dims else float("nan")

    @property
    def d3_share(self) -> float:
        """``c3·D³ / count`` at the largest D (0 for a quadratic count)."""
        if self.order != ORDER_CUBIC or not self.counts:
            return 0.0
        return self.coef[3] * self.max_dim**3 / self.counts[-1]


def _lagrange(nodes: Sequence[Fraction], index: int, x: Fraction) -> Fraction:
    term = Fraction(1)
    for j, node in enumerate(nodes):
        if j != index:
            term *= (x - node) / (nodes[index] - node)
    return term


def _monomial(nodes: Sequence[Fraction], values: Sequence[Fraction]) -> list[Fraction]:
    """Coefficients c0…c3 of the cubic through (nodes, values), exactly (Newton's divided differences)."""
    table = list(values)
    newton = [table[0]]
    for order in range(1, len(nodes)):
        table = [(table[i + 1] - table[i]) / (nodes[i + order] - nodes[i]) for i in range(len(table) - 1)]
        newton.append(table[0])
    coef = [Fraction(0)] * len(nodes)
    basis = [Fraction(1)]  # Π_{j<k} (x − node_j), low power first
    for k, a in enumerate(newton):
        for power, b in enumerate(basis):
            coef[power] += a * b
        basis = [Fraction(0), *basis]
        for power in range(len(basis) - 1):
            basis[power] -= nodes[k] * basis[power + 1]
    return coef


def _not_fitted(dims: Sequence[float], counts: Sequence[float], reason: str) -> CountedFit:
    return CountedFit(tuple(dims), tuple(counts), ORDER_NOT_FITTED, reason)


def fit_counted(dims: Sequence[float] | np.ndarray, counts: Sequence[float] | np.ndarray) -> CountedFit:
    """The exact cubic in D through the counted FLOPs (one or more runs per D) and its order."""
    d = np.asarray(dims, dtype=float).ravel()
    f = np.asarray(counts, dtype=float).ravel()
    keep = np.isfinite(d) & np.isfinite(f) & (d > 0) & (f >= 0)
    d, f = d[keep], f[keep]
    distinct = np.unique(d)
    per_dim = [f[d == x] for x in distinct]
    for x, values in zip(distinct, per_dim, strict=True):
        if values.max() - values.min() > COUNT_PRECISION * values.max():
            return _not_fitted(
                distinct,
                [v.max() for v in per_dim],
                f"counted FLOPs differ between runs at D = {x:g} ({values.min():.6g} vs {values.max():.6g})",
            )
    values = [float(v[0]) for v in per_dim]
    if len(distinct) < COUNTED_MIN_DIMS:
        shown = ", ".join(f"{x:g}" for x in distinct) or "none"
        return _not_fitted(
            distinct,
            values,
            f"need {COUNTED_MIN_DIMS} distinct D to determine a cubic, got {len(distinct)} ({shown})",
        )
    picks = sorted({round(float(i)) for i in np.linspace(0, len(distinct) - 1, COUNTED_MIN_DIMS)})
    nodes = [Fraction(float(distinct[i])) for i in picks]
    exact = [Fraction(values[i]) for i in picks]
    coef = _monomial(nodes, exact)
    bound = COUNT_PRECISION * sum(
        abs(v) / abs(np.prod([float(n - m) for m in nodes if m != n]))
        for n, v in zip(nodes, exact, strict=True)
    )
    confirmed = []
    for i, x in enumerate(distinct):
        if i in picks:
            continue
        at = Fraction(float(x))
        predicted = sum(c * at**p for p, c in enumerate(coef))
        slack = COUNT_PRECISION * (
            abs(values[i]) + sum(abs(_lagrange(nodes, k, at)) * abs(v) for k, v in enumerate(exact))
        )
        if abs(predicted - Fraction(values[i])) > slack:
            return _not_fitted(
                distinct,
                values,
                f"counted FLOPs are not a cubic in D: at D = {x:g} the cubic through D = "
                f"{', '.join(f'{float(n):g}' for n in nodes)} gives {float(predicted):.6g}, "
                f"counted {values[i]:.6g}",
            )
        confirmed.append(float(x))
    c3 = float(coef[3])
    if c3 > bound:
        order, reason = ORDER_CUBIC, ""
    elif c3 >= -bound:
        order, reason = ORDER_QUADRATIC, ""
    else:
        return _not_fitted(distinct, values, f"negative D³ coefficient {c3:.3g} in the counted FLOPs")
    return CountedFit(
        dims=tuple(float(x) for x in distinct),
        counts=tuple(values),
        order=order,
        reason=reason,
        coef=(float(coef[0]), float(coef[1]), float(coef[2]), c3 if order == ORDER_CUBIC else 0.0),
        nodes=tuple(float(n) for n in nodes),
        c3_bound=float(bound),
        confirmed_at=tuple(confirmed),
    )


def _counted_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs that logged counted work (any status: the count does not depend on training)."""
    if runs.empty or COUNTED_METRIC not in runs:
        return runs.iloc[0:0]
    return runs[runs[COUNTED_METRIC].notna() & runs["dim"].notna()]


def has_counts(runs: pd.DataFrame) -> bool:
    return not _counted_runs(runs).empty


def _at_max(part: pd.DataFrame, column: str, dim: float) -> float:
    if column not in part:
        return float("nan")
    values = part.loc[part["dim"] == dim, column].dropna()
    return float(values.median()) if len(values) else float("nan")


def counted_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per curve: the counted order, the cubic's D³ coefficient and share, the evidence."""
    columns = [
        *FIT_GROUP,
        "order_counted",
        "counted_reason",
        "n_dims",
        "max_dim",
        "c3",
        "d3_share_counted",
        "cubic_share_logged",
        "flops_at_max",
        "bytes_at_max",
        "confirmed_dims",
        TAG_UNCOUNTED_OPS,
    ]
    rows: list[dict[str, object]] = []
    counted = _counted_runs(runs)
    for key, part in counted.groupby(list(FIT_GROUP), sort=True, dropna=False):
        fit = fit_counted(part["dim"].to_numpy(dtype=float), part[COUNTED_METRIC].to_numpy(dtype=float))
        top = fit.max_dim
        flops = _at_max(part, COUNTED_METRIC, top)
        ops = part[TAG_UNCOUNTED_OPS] if TAG_UNCOUNTED_OPS in part else pd.Series(dtype=str)
        uncounted = sorted({op for text in ops.fillna("") for op in str(text).split(",") if op})
        rows.append(
            {
                **dict(zip(FIT_GROUP, key, strict=True)),
                "order_counted": fit.order,
                "counted_reason": fit.reason,
                "n_dims": len(fit.dims),
                "max_dim": top,
                "c3": fit.coef[3],
                "d3_share_counted": fit.d3_share,
                "cubic_share_logged": _at_max(part, CUBIC_METRIC, top) / flops if flops else float("nan"),
                "flops_at_max": flops,
                "bytes_at_max": _at_max(part, BYTES_METRIC, top),
                "confirmed_dims": len(fit.confirmed_at),
                TAG_UNCOUNTED_OPS: ",".join(uncounted),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def counted_orders(table: pd.DataFrame) -> pd.DataFrame:
    """Per sweep × device × method: cubic if any curve's count is, quadratic if every fitted one is."""
    columns = [
        *METHOD_GROUP,
        "order_counted",
        "counted_max_dim",
        "d3_share_counted",
        "counted_reason",
        TAG_UNCOUNTED_OPS,
    ]
    rows: list[dict[str, object]] = []
    for key, part in table.groupby(list(METHOD_GROUP), sort=True, dropna=False):
        fitted = part[part["order_counted"] != ORDER_NOT_FITTED]
        order = ORDER_NOT_FITTED
        if len(fitted):
            order = ORDER_CUBIC if (fitted["order_counted"] == ORDER_CUBIC).any() else ORDER_QUADRATIC
        pool = fitted[fitted["order_counted"] == order] if len(fitted) else part
        best = pool.sort_values(["max_dim", "d3_share_counted"], ascending=False).iloc[0]
        ops = sorted({op for text in part[TAG_UNCOUNTED_OPS] for op in str(text).split(",") if op})
        rows.append(
            {
                **dict(zip(METHOD_GROUP, key, strict=True)),
                "order_counted": order,
                "counted_max_dim": best["max_dim"],
                "d3_share_counted": best["d3_share_counted"],
                "counted_reason": "" if len(fitted) else best["counted_reason"],
                TAG_UNCOUNTED_OPS: ",".join(ops),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def rate_table(
    runs: pd.DataFrame, peaks: Mapping[str, float] | None = None, *, metric: str = "sec_per_iter_min"
) -> pd.DataFrame:
    """Achieved rate per curve and D: median counted FLOPs over the median fastest step time, in GFLOP/s,
    beside the sweep's measured matrix-multiply peak (``pct_of_peak``) and FLOPs per byte."""
    columns = [
        *FIT_GROUP,
        "dim",
        "flops",
        "flops_cubic",
        "bytes",
        "seconds",
        "gflops",
        "peak_gflops",
        "pct_of_peak",
        "flops_per_byte",
    ]
    counted = _counted_runs(runs)
    counted = counted[counted[TAG_STATUS] == STATUS_OK] if TAG_STATUS in counted else counted
    stat = metric if metric in counted and counted[metric].notna().any() else "sec_per_iter"
    if counted.empty or stat not in counted:
        return pd.DataFrame(columns=columns)
    counted = counted[counted[stat].notna() & (counted[stat] > 0)]
    cols = {COUNTED_METRIC: "flops", CUBIC_METRIC: "flops_cubic", BYTES_METRIC: "bytes", stat: "seconds"}
    present = {k: v for k, v in cols.items() if k in counted}
    table = counted.groupby([*FIT_GROUP, "dim"], sort=True, dropna=False)[list(present)].median()
    table = table.rename(columns=present).reset_index()
    for name in cols.values():
        if name not in table:
            table[name] = float("nan")
    table["gflops"] = table["flops"] / table["seconds"] / 1e9
    table["peak_gflops"] = table[TAG_SWEEP].map(dict(peaks or {})).astype(float)
    table["pct_of_peak"] = 100.0 * table["gflops"] / table["peak_gflops"]
    table["flops_per_byte"] = table["flops"] / table["bytes"]
    table["dim"] = table["dim"].astype(int)
    return table[columns]


def mark_disturbed(rates: pd.DataFrame, flagged: pd.DataFrame) -> pd.DataFrame:
    """``rates`` with a ``disturbed`` column: True at a curve's D where a timing was flagged as disturbed
    (:func:`analysis.cost_tables.flag_disturbed`), so that a figure can tell such a rate from the others."""
    out = rates.copy()
    keys = [*FIT_GROUP, "dim"]
    if flagged.empty or out.empty or not set(keys) <= set(flagged.columns):
        out["disturbed"] = False
        return out
    marked = {tuple(str(v) for v in row) for row in flagged[keys].itertuples(index=False)}
    out["disturbed"] = [tuple(str(v) for v in row) in marked for row in out[keys].itertuples(index=False)]
    return out
