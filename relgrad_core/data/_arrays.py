"""User arrays → checked float64 matrices, and standardisation with training statistics.

Standardising ``x ↦ y = (x − μ)/s`` (μ, s per column, from the training split) is an affine map with
``log|det ∂y/∂x| = −Σ_j log s_j``, so a log-density on the standardised tensors converts back exactly:

    log p_x(x) = log p_y(y) − Σ_j log s_j.

That constant is what :class:`Standardization.log_abs_det` returns and what a :class:`Dataset` carries as
``ll_offset`` when its reported space is the one before standardisation. Everything here is numpy-only
and imports no :class:`Dataset`, so ``dataset.py`` can use it without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from relgrad_core.checks import check_open_interval
from relgrad_core.data._degenerate import constant_columns, constant_message

_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)
#: What numpy dtype kinds that are not numbers hold, for the message that refuses them.
_NOT_NUMBERS = {
    "b": "booleans",
    "c": "complex numbers (only real values have a density here)",
    "U": "strings",
    "S": "bytes",
    "O": "Python objects (e.g. a mixed table: convert it with x.astype(float))",
    "M": "datetimes",
    "m": "timedeltas",
    "V": "structured records",
}


def as_float_matrix(value: object, what: str, *, name: str, min_rows: int = 1) -> np.ndarray:
    """``value`` (numpy array, torch tensor or nested list) as a finite 2-D float64 array.

    Integers and floats are accepted (torch's bfloat16 and float8 too: numpy has no such dtypes, so they
    are widened to float32, exactly); strings, objects, booleans and complex numbers are refused, as
    are 1-D input, NaN/inf and fewer than ``min_rows`` rows. Every message names ``name`` and ``what``.
    """
    where = f"{name}: {what}"
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        if tensor.dtype.is_floating_point and tensor.dtype not in _NUMPY_FLOATS:
            tensor = tensor.float()  # bfloat16, float8: every value is exact in float32
        array = tensor.numpy()
    elif isinstance(value, np.ndarray):
        array = value
    elif isinstance(value, list | tuple):
        try:
            array = np.asarray(value)
        except ValueError as err:  # ragged nested lists
            raise ValueError(f"{where} is not a rectangular table ({err})") from err
    else:
        raise TypeError(f"{where} must be a numpy array or a torch tensor, got {type(value).__name__}")
    kind = array.dtype.kind
    if kind not in "iuf":
        held = _NOT_NUMBERS.get(kind, "values that are not numbers")
        raise TypeError(f"{where} has dtype {array.dtype}: {held}; expected real numbers (int or float)")
    if array.ndim != 2:
        hint = " (one sample per row: use x.reshape(-1, 1) for 1-D data)" if array.ndim == 1 else ""
        raise ValueError(f"{where} must be 2-D (n_samples, dim), got shape {array.shape}{hint}")
    if array.shape[1] == 0 or array.shape[0] == 0:
        raise ValueError(f"{where} is empty (shape {array.shape})")
    if array.shape[0] < min_rows:
        raise ValueError(f"{where} has {array.shape[0]} row(s); at least {min_rows} are needed")
    array = array.astype(np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{where} has {int(bad.sum())} non-finite value(s) (NaN/inf), first at row {row}, column {col}"
        )
    return array


def split_sizes(n: int, val_fraction: float, test_fraction: float, *, name: str) -> tuple[int, int, int]:
    """``(n_train, n_val, n_test)`` for ``n`` rows, each at least 1 (the test/val counts are rounded)."""
    for label, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        check_open_interval(label, value, 0.0, 1.0, where=name)
    n_test = max(1, round(test_fraction * n))
    n_val = max(1, round(val_fraction * n))
    n_train = n - n_val - n_test
    if n_train < 2:
        raise ValueError(
            f"{name}: {n} rows are too few to split into train/val/test with val_fraction={val_fraction}, "
            f"test_fraction={test_fraction} (train would get {n_train}; at least 4 rows are needed)"
        )
    return n_train, n_val, n_test


@dataclass(frozen=True)
class Standardization:
    """Per-column ``y = (x − mean)/std`` with statistics from ``fit_on`` (population sd, ddof = ``ddof``)."""

    mean: np.ndarray
    std: np.ndarray
    fit_on: str
    ddof: int = 0

    @classmethod
    def fit(
        cls,
        rows: np.ndarray,
        *,
        name: str,
        fit_on: str = "train",
        ddof: int = 0,
        columns: list[str] | None = None,
    ) -> Standardization:
        """Column means and sds of ``rows``; a constant column is an error naming it.

        Constant means sd ≤ ``CONSTANT_RTOL`` · max|value| (see :mod:`._degenerate`), not sd = 0: a column
        of 0.1 has a rounding sd of ~1e-17, and dividing by it would blow rounding up to unit variance.
        """
        if rows.shape[0] <= ddof:
            raise ValueError(f"{name}: {rows.shape[0]} row(s) in {fit_on} cannot give a standard deviation")
        mean = rows.mean(axis=0)
        std = rows.std(axis=0, ddof=ddof)
        constant = constant_columns(rows)
        if constant.size:
            message = constant_message(constant, rows, columns).replace("training", fit_on)
            raise ValueError(f"{name}: {message}; cannot standardise: drop them")
        if not np.isfinite(std).all():
            column = int(np.flatnonzero(~np.isfinite(std))[0])
            raise ValueError(
                f"{name}: column {column} (counting from 0) is too large to standardise in float64 "
                f"(its variance overflows); rescale it first"
            )
        return cls(mean=mean, std=std, fit_on=fit_on, ddof=ddof)

    def apply(self, rows: np.ndarray) -> np.ndarray:
        return (rows - self.mean) / self.std

    @property
    def log_abs_det(self) -> float:
        """``log|det ∂y/∂x| = −Σ_j log s_j``: add it to an LL on standardised data to undo the map."""
        return -float(np.log(self.std).sum())

    def as_info(self) -> dict[str, object]:
        return {
            "fit_on": self.fit_on,
            "ddof": self.ddof,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "log_abs_det": self.log_abs_det,
        }
