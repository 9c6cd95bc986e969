"""The smooth leaky ReLU of the paper and its exact inverse.

``σ(y) = α·y + (1−α)·softplus(y)`` with ``0 < α ≤ 1``; ``σ'(y) = α + (1−α)·sigmoid(y) ∈ (α, 1]`` and
``σ''(y) = (1−α)·sigmoid(y)·(1−sigmoid(y)) ≥ 0``, so σ is increasing, convex and bijective on ℝ.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def check_alpha(alpha: float) -> float:
    """Validate the slope α of the negative branch (``0 < α ≤ 1``)."""
    alpha = float(alpha)
    if not (0.0 < alpha <= 1.0) or math.isnan(alpha):
        raise ValueError(f"alpha must lie in (0, 1], got {alpha}")
    return alpha


def _softplus(y: torch.Tensor) -> torch.Tensor:
    # torch's softplus returns y itself above `threshold` (default 20), an absolute error of e^-20 ≈ 2e-9
    # that float64 sees; switching over where e^-y drops below the dtype's eps keeps it exact to rounding
    threshold = max(20.0, -math.log(torch.finfo(y.dtype).eps))
    return F.softplus(y, threshold=threshold)


def smooth_leaky_relu(y: torch.Tensor, alpha: float) -> torch.Tensor:
    """``σ(y) = α·y + (1−α)·softplus(y)``, overflow-safe."""
    return alpha * y + (1.0 - alpha) * _softplus(y)


def log_derivative(y: torch.Tensor, alpha: float) -> torch.Tensor:
    """``log σ'(y) = log(α + (1−α)·sigmoid(y))``, finite for all y since σ' ≥ α > 0."""
    return torch.log(alpha + (1.0 - alpha) * torch.sigmoid(y))


def inverse_smooth_leaky_relu(
    z: torch.Tensor, alpha: float, *, max_iter: int = 100, rtol: float | None = None
) -> torch.Tensor:
    """Solve ``σ(y) = z`` elementwise by a bracketed Newton iteration.

    Bracket: ``σ(y) > y`` and ``σ(y) > α·y`` give ``y < hi = min(z, z/α)``;
    ``softplus(y) ≤ log 2 + max(y, 0)`` gives ``y ≥ lo = min(z − c, (z − c)/α)`` with ``c = (1−α)·log 2``.
    σ is increasing and convex, so Newton started at ``hi`` (where ``σ(hi) ≥ z``) decreases monotonically
    to the root without overshooting; the clamp to ``[lo, hi]`` only guards against rounding. Converges
    quadratically on both branches.
    """
    if alpha == 1.0:
        return z.clone()
    finfo = torch.finfo(z.dtype)
    rtol = 4 * finfo.eps if rtol is None else rtol
    c = (1.0 - alpha) * math.log(2.0)
    hi = torch.minimum(z, z / alpha)
    lo = torch.minimum(z - c, (z - c) / alpha)
    y = hi.clone()
    for _ in range(max_iter):
        residual = smooth_leaky_relu(y, alpha) - z
        slope = alpha + (1.0 - alpha) * torch.sigmoid(y)
        step = residual / slope
        y = torch.clamp(y - step, lo, hi)
        if bool((step.abs() <= rtol * (1.0 + y.abs())).all()):
            break
    return y
