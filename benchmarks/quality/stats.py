"""Paired statistics over seeds.

One seed fixes the split, the dequantisation noise, the init and the batch order, and both arms of a
comparison see exactly that; so the per-seed differences ``d_s = a_s − b_s`` carry the comparison and
the standard error is that of their mean, ``sd(d)/√n`` (sample sd, ddof = 1).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PairedDiff:
    """``a − b`` over paired seeds: the two means, the mean difference, its SE and how often ``a`` won."""

    n: int
    mean_a: float
    mean_b: float
    diff: float
    se: float
    wins_a: int

    def __str__(self) -> str:
        return f"{self.diff:+.2f} ± {self.se:.2f}"


def paired_difference(a: Sequence[float], b: Sequence[float]) -> PairedDiff:
    """Mean of ``a_s − b_s`` and its standard error ``sd(a − b)/√n`` (NaN when n = 1).

    Raises:
        ValueError: different lengths, no pairs, or a non-finite value.
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples need equal lengths, got {len(a)} and {len(b)}")
    if len(a) == 0:
        raise ValueError("paired difference of zero pairs")
    if not all(math.isfinite(float(v)) for v in (*a, *b)):
        raise ValueError("paired difference needs finite values; drop diverged runs first")
    diffs = [float(x) - float(y) for x, y in zip(a, b, strict=True)]
    n = len(diffs)
    return PairedDiff(
        n=n,
        mean_a=statistics.fmean(a),
        mean_b=statistics.fmean(b),
        diff=statistics.fmean(diffs),
        se=statistics.stdev(diffs) / math.sqrt(n) if n > 1 else math.nan,
        wins_a=sum(d > 0 for d in diffs),
    )


def mean_and_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error ``sd/√n`` of ``values`` (SE NaN for one value)."""
    if not values:
        raise ValueError("mean of zero values")
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan)
