"""Argument and output validation shared by every loader.

Loaders check their arguments before doing any work and :func:`check_splits` checks every
:class:`~relgrad_core.data.dataset.Dataset` at construction, so a bad file or a bad size surfaces as one
clear error instead of a NaN loss later. (No import of ``Dataset`` here: ``dataset.py`` imports this.)
"""

from __future__ import annotations

import math

import torch


def check_positive_int(value: object, name: str, *, dataset: str) -> int:
    """Return ``value`` if it is a positive ``int`` (not ``bool``), else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{dataset}: {name} must be a positive int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{dataset}: {name} must be positive, got {value}")
    return value


def check_optional_positive_int(value: object, name: str, *, dataset: str) -> int | None:
    """Like :func:`check_positive_int` but ``None`` passes through (meaning "no limit")."""
    if value is None:
        return None
    return check_positive_int(value, name, dataset=dataset)


def check_positive_float(value: object, name: str, *, dataset: str) -> float:
    """Return ``value`` as a float if it is a finite number > 0, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{dataset}: {name} must be a positive number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{dataset}: {name} must be finite and positive, got {value}")
    return float(value)


def check_fraction(value: object, name: str, *, dataset: str) -> float:
    """Return ``value`` as a float if it lies strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{dataset}: {name} must be a number in (0, 1), got {value!r}")
    if not 0.0 < value < 1.0:
        raise ValueError(f"{dataset}: {name} must lie strictly between 0 and 1, got {value}")
    return float(value)


def check_logit_lambda(value: object, *, dataset: str) -> float:
    """λ of the logit transform ``logit(λ + (1 − 2λ)x)`` must lie in (0, 0.5)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{dataset}: lam must be a number in (0, 0.5), got {value!r}")
    if not 0.0 < value < 0.5:
        raise ValueError(f"{dataset}: lam must lie strictly between 0 and 0.5, got {value}")
    return float(value)


def check_seed(value: object) -> int:
    """Seeds are non-negative ints (numpy and torch generators both accept those)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"seed must be an int, got {value!r}")
    if value < 0:
        raise ValueError(f"seed must be non-negative, got {value}")
    return value


def check_dtype(dtype: object) -> torch.dtype:
    """Splits are floating-point tensors; anything else is a caller error."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    return dtype


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
