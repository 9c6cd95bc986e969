"""Argument and input checks shared by every public entry point of the core (data loaders included).

Each check raises before any work starts, with a one-line message that names the argument and the problem
(prefixed with ``where``, e.g. the data set, when one is given). A number that is of the wrong kind or out
of range is a ``ValueError``: bools are refused wherever a number is expected (``True`` is an ``int`` to
Python, never a batch size), and so are floats where an integer is and strings anywhere. An object of the
wrong kind altogether (not a tensor, not a torch dtype, not a bool flag) is a ``TypeError``.
"""

from __future__ import annotations

import math

import torch


def _prefix(where: str) -> str:
    return f"{where}: " if where else ""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_positive_int(name: str, value: object, *, allow_none: bool = False, where: str = "") -> int | None:
    """``value`` if it is an ``int ≥ 1`` (not a bool), ``None`` if allowed; else ``ValueError``."""
    if value is None and allow_none:
        return None
    if not _is_int(value) or value < 1:
        raise ValueError(f"{_prefix(where)}{name} must be a positive integer, got {value!r}")
    return value


def check_nonnegative_int(name: str, value: object, *, where: str = "") -> int:
    """``value`` if it is an ``int ≥ 0`` (not a bool); else ``ValueError``."""
    if not _is_int(value) or value < 0:
        raise ValueError(f"{_prefix(where)}{name} must be a non-negative integer, got {value!r}")
    return value


def check_positive_number(
    name: str, value: object, *, allow_none: bool = False, where: str = ""
) -> float | None:
    """``float(value)`` if it is a finite real ``> 0`` (not a bool), ``None`` if allowed; else ValueError."""
    if value is None and allow_none:
        return None
    if not _is_real(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{_prefix(where)}{name} must be a positive finite number, got {value!r}")
    return float(value)


def check_open_interval(name: str, value: object, low: float, high: float, *, where: str = "") -> float:
    """``float(value)`` if it is a real number strictly between ``low`` and ``high``; else ValueError."""
    if not _is_real(value) or not low < value < high:
        bounds = f"strictly between {low:g} and {high:g}"
        raise ValueError(f"{_prefix(where)}{name} must lie {bounds}, got {value!r}")
    return float(value)


def check_seed(value: object) -> int:
    """Seeds are non-negative ints (numpy and torch generators both accept those)."""
    return check_nonnegative_int("seed", value)


def check_flag(name: str, value: object, *, where: str = "") -> bool:
    """``value`` if it is ``True`` or ``False``; else ``TypeError`` (1 and "yes" are not flags)."""
    if not isinstance(value, bool):
        raise TypeError(f"{_prefix(where)}{name} must be True or False, got {value!r}")
    return value


def check_dtype(dtype: object) -> torch.dtype:
    """Splits are floating-point tensors; anything else is a caller error."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    return dtype


def check_batch(
    x: object,
    *,
    dim: int,
    dtype: torch.dtype,
    device: torch.device,
    name: str = "input",
) -> torch.Tensor:
    """A floating ``(n ≥ 1, dim)`` tensor with finite entries, cast to ``dtype`` on ``device``.

    Refused with a message naming ``name``: a non-tensor, a shape other than ``(batch, dim)``, no rows,
    a non-floating dtype (bool, integer, complex), NaN or ±inf entries. Floating input of another dtype or
    device is converted, as every entry point of the core does. Cost O(n·D) and one host sync for the
    finiteness test: run it once per call, not per training step.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    expected = f"expected input of shape (batch, {dim}), got {tuple(x.shape)}"
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D: {expected}")
    if x.shape[1] != dim:
        raise ValueError(f"{name} has dimension {x.shape[1]} but the flow has dim={dim}: {expected}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 rows)")
    if not x.dtype.is_floating_point:
        raise ValueError(f"{name} has dtype {x.dtype}; expected a floating-point tensor")
    x = x.to(device=device, dtype=dtype)
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite).any(dim=1).sum())
        raise ValueError(f"{name} contains NaN or inf values ({bad} of {x.shape[0]} rows)")
    return x


def check_splits(name: str, train: object, val: object, test: object) -> None:
    """Every split a non-empty, finite, 2-D floating-point tensor, all of one width; else raise naming it."""
    widths = {}
    for split, tensor in (("train", train), ("val", val), ("test", test)):
        where = f"{name}: {split} split"
        if not isinstance(tensor, torch.Tensor):
            hint = " (for numpy arrays use Dataset.from_arrays)" if hasattr(tensor, "__array__") else ""
            raise TypeError(f"{where} is a {type(tensor).__name__}, expected a torch.Tensor{hint}")
        if tensor.dim() != 2:
            raise ValueError(f"{where} must be 2-D (n, dim), got shape {tuple(tensor.shape)}")
        if tensor.shape[0] == 0 or tensor.shape[1] == 0:
            raise ValueError(f"{where} is empty (shape {tuple(tensor.shape)})")
        if not tensor.dtype.is_floating_point:
            raise TypeError(f"{where} has dtype {tensor.dtype}, expected a floating-point dtype")
        bad = ~torch.isfinite(tensor)
        if bool(bad.any()):
            rows = bad.any(dim=1).nonzero().flatten()
            raise ValueError(
                f"{where} has {int(bad.sum())} non-finite values (NaN/inf), first in row "
                f"{int(rows[0])}; check the source file and its preprocessing"
            )
        widths[split] = int(tensor.shape[1])
    if len(set(widths.values())) != 1:
        raise ValueError(f"{name}: splits disagree in dimension: {widths}")
