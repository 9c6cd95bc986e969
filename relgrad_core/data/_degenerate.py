"""Training data whose density does not exist: constant columns and linearly dependent columns.

A maximum-likelihood density of rows ``x ∈ R^D`` is degenerate when the training rows lie in an affine
subspace of lower dimension: a flow can then shrink that direction without bound and its log-likelihood
climbs to +∞ (and the Gaussian yardstick, whose covariance is singular, does not exist). Two cases:

* a **constant column** j: its standard deviation is at most :data:`CONSTANT_RTOL` times its largest
  absolute value. Rounding is the reason for a relative test: a column holding only 0.1 (not exact in
  binary) has a computed sd of about 1e-17, not 0, and standardising it would divide by that;
* a **dependent column** j, a linear combination of the columns before it: after standardising every
  column, the variance column j keeps when regressed on the earlier independent columns is below
  :data:`DEPENDENT_RTOL` of its own. That residual variance is ``L_jj²`` of the Cholesky factor of the
  correlation matrix ``C = LLᵀ``, which :func:`dependent_columns` computes one column at a time, leaving
  out the columns already found dependent (the factor of a singular ``C`` does not exist otherwise).

Fewer training rows than ``D + 1`` always leave the rows in such a subspace. Columns are numbered from 0,
as in numpy. Nothing here imports ``Dataset`` (``dataset.py`` imports this module).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: A column is constant when sd ≤ CONSTANT_RTOL · max|x|: rounding leaves ~1e-16 of the scale in a column
#: of one repeated value, while real variation, even that of float32 data, is above ~1e-8 of it.
CONSTANT_RTOL = 1e-12
#: A column is a linear combination of earlier ones when it keeps less than this fraction of its variance
#: after regressing on them (float64 rounding leaves ~1e-15; the Gaussian yardstick uses the same bound).
DEPENDENT_RTOL = 1e-10
#: A coefficient counts in "column j = a·column i + ..." when it is at least this fraction of the largest.
_COEFFICIENT_RTOL = 1e-6


def constant_columns(rows: np.ndarray) -> np.ndarray:
    """Indices of the columns of ``rows`` (float64, finite) whose sd ≤ CONSTANT_RTOL · max|value|."""
    std = rows.std(axis=0)
    scale = np.abs(rows).max(axis=0)
    return np.flatnonzero(~(std > CONSTANT_RTOL * scale))


def constant_message(columns: np.ndarray, rows: np.ndarray, labels: list[str] | None = None) -> str:
    """``column(s) 2, 5 constant (...)``: one line naming the columns and the relative rule."""
    names = [labels[i] if labels else str(i) for i in columns[:10]]
    more = f" and {len(columns) - 10} more" if len(columns) > 10 else ""
    counted = "" if labels else " (counting from 0)"
    first = int(columns[0])
    return (
        f"column(s) {', '.join(names)}{more}{counted} constant in the training rows (column {names[0]} is "
        f"{rows[0, first]:.6g} throughout: its sd is at most {CONSTANT_RTOL:g} of its largest |value|, "
        f"which is rounding, not variation)"
    )


@dataclass(frozen=True)
class Dependence:
    """Column ``column`` is (numerically) ``Σ coefficient_i · column_i`` + a constant, over ``sources``."""

    column: int
    sources: tuple[int, ...]
    residual: float  # the variance it keeps after the regression, as a fraction of its own
    identical: bool  # one source, and the two columns are equal value for value


def dependent_columns(rows: np.ndarray) -> list[Dependence]:
    """Every column of ``rows`` (float64, finite, no constant column) that is a linear combination of the
    columns before it, in column order (see the module docstring for the rule)."""
    n, dim = rows.shape
    z = (rows - rows.mean(axis=0)) / rows.std(axis=0)
    corr = z.T @ z / n
    factor = np.zeros((dim, dim))  # columns of the Cholesky factor of the independent columns
    kept: list[int] = []
    found: list[Dependence] = []
    for j in range(dim):
        # L[j, kept] then the variance column j keeps: C_jj − Σ_k L[j, k]²
        row = factor[j, kept]
        residual = float(corr[j, j] - row @ row)
        if residual < DEPENDENT_RTOL * corr[j, j]:
            found.append(_dependence(rows, corr, kept, j, residual))
            continue
        pivot = np.sqrt(residual)
        below = slice(j + 1, dim)
        factor[below, j] = (corr[below, j] - factor[below][:, kept] @ row) / pivot
        factor[j, j] = pivot
        kept.append(j)
    return found


def _dependence(rows: np.ndarray, corr: np.ndarray, kept: list[int], j: int, residual: float) -> Dependence:
    coefficients = np.linalg.lstsq(corr[np.ix_(kept, kept)], corr[kept, j], rcond=None)[0]
    largest = float(np.abs(coefficients).max()) if len(kept) else 0.0
    weights = zip(kept, coefficients, strict=True)
    sources = tuple(k for k, a in weights if abs(a) >= _COEFFICIENT_RTOL * largest)
    identical = len(sources) == 1 and bool(np.array_equal(rows[:, j], rows[:, sources[0]]))
    return Dependence(j, sources, max(residual, 0.0), identical)


def dependence_message(found: list[Dependence]) -> str:
    """One line on the first dependent column (and how many more there are)."""
    name = str
    first = found[0]
    more = f"; {len(found) - 1} more column(s) depend on others" if len(found) > 1 else ""
    if first.identical:
        what = f"columns {name(first.sources[0])} and {name(first.column)} (counting from 0) are identical"
    elif len(first.sources) == 1:
        what = (
            f"column {name(first.column)} (counting from 0) is an affine function of column "
            f"{name(first.sources[0])} (they are perfectly correlated)"
        )
    else:
        sources = ", ".join(name(i) for i in first.sources)
        what = f"column {name(first.column)} (counting from 0) is a linear combination of columns {sources}"
    return (
        f"the training rows are rank-deficient: {what}{more}; their density is degenerate (the "
        f"likelihood grows without bound): drop the redundant column(s)"
    )


def check_not_degenerate(rows: np.ndarray, *, name: str) -> None:
    """Raise ``ValueError`` (one line, prefixed ``name:``) when the training ``rows`` have no density."""
    n, dim = rows.shape
    if n <= dim:
        raise ValueError(
            f"{name}: {n} training rows for {dim} columns; at least {dim + 1} are needed (fewer rows than "
            f"columns + 1 always lie in a lower-dimensional subspace, where the density is degenerate)"
        )
    constant = constant_columns(rows)
    if constant.size:
        raise ValueError(f"{name}: {constant_message(constant, rows)}; drop them")
    found = dependent_columns(rows)
    if found:
        raise ValueError(f"{name}: {dependence_message(found)}")
