"""Argument and input checks shared by every public entry point of the core.

Each check raises before any work starts, with a one-line message that names the argument and the problem.
Bools are refused wherever a number is expected (``True`` is an ``int`` to Python, never a batch size).
"""

from __future__ import annotations

import math

import torch


def check_positive_int(name: str, value: object, *, allow_none: bool = False) -> int | None:
    """``value`` if it is an ``int ≥ 1`` (not a bool), ``None`` if allowed; else ``ValueError``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_nonnegative_int(name: str, value: object) -> int:
    """``value`` if it is an ``int ≥ 0`` (not a bool); else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def check_positive_number(name: str, value: object, *, allow_none: bool = False) -> float | None:
    """``float(value)`` if it is a finite real ``> 0`` (not a bool), ``None`` if allowed; else ValueError."""
    if value is None and allow_none:
        return None
    is_real = isinstance(value, int | float) and not isinstance(value, bool)
    if not is_real or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


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
