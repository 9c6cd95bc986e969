"""Argument checks of the analysis entry points, one rule for each kind of argument.

Light (no numpy or pandas), so that the ``relgrad`` command checks its report flags with the same rule
before anything heavy is loaded. A bool is never a count (``True`` is an ``int`` to Python); numpy integers
are counts.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

from analysis.errors import ReportError

#: Fewest bootstrap resamples a fit takes (its percentile intervals need a few in each tail).
MIN_BOOT = 100


def int_problem(value: object, minimum: int = 1) -> str | None:
    """What is wrong with ``value`` as an integer ``>= minimum``, or None when nothing is."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        return f"must be {wanted}, got {value!r}"
    return None


def check_int(name: str, value: object, *, minimum: int = 1, allow_none: bool = False) -> int | None:
    """``int(value)`` if it is an integer ``>= minimum`` (None passes if allowed); else ReportError."""
    if value is None and allow_none:
        return None
    problem = int_problem(value, minimum)
    if problem is not None:
        raise ReportError(f"{name} {problem}" + (" (or None)" if allow_none else ""))
    return int(value)  # type: ignore[call-overload]


def check_nonnegative(name: str, value: object, unit: str = "") -> float:
    """``float(value)`` if it is a real number ``>= 0`` (not a bool, not NaN); else ReportError."""
    if isinstance(value, bool) or not isinstance(value, Real) or not value >= 0:
        raise ReportError(f"{name} must be a non-negative number{unit}, got {value!r}")
    return float(value)


def check_bootstrap(n_boot: object, level: object) -> None:
    """A bootstrap needs at least :data:`MIN_BOOT` resamples and a coverage ``level`` inside (0, 1)."""
    check_int("n_boot", n_boot, minimum=MIN_BOOT)
    if isinstance(level, bool) or not isinstance(level, Real) or not 0 < level < 1 or math.isnan(level):
        raise ReportError(f"level must lie in (0, 1), got {level!r}")
