"""The logit transform of dequantised pixels and the change of variables back to pixel space.

Image data (``digits``, ``mnist``) are dequantised to ``x ∈ [0, 1)^D`` and mapped to

    u = λ + (1 − 2λ)·x,      y = logit(u) = log u − log(1 − u),

as in Papamakarios et al. (2017, MAF ``datasets/mnist.py``; λ = 1e-6) and Dinh et al. (2017). Flows
are trained on ``y``, so their log-likelihoods are densities in logit space. By the change of
variables ``log p_x(x) = log p_y(y) + log|det ∂y/∂x|`` with, per dimension,

    log|∂y/∂x| = log(1 − 2λ) − log u − log(1 − u) = log(1 − 2λ) + softplus(y) + softplus(−y),

which needs only ``y`` (``log u = −softplus(−y)``, ``log(1 − u) = −softplus(y)``). A density on
integer levels ``v = levels·x`` (e.g. 0..255 for MNIST) is ``log p_x − D·log(levels)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from relgrad_core.checks import check_open_interval


def check_lam(lam: object, *, where: str = "") -> float:
    """λ of the logit transform ``logit(λ + (1 − 2λ)x)`` must lie in (0, 0.5)."""
    return check_open_interval("lam", lam, 0.0, 0.5, where=where)


def logit_transform(x: torch.Tensor, lam: float = 1e-6) -> torch.Tensor:
    """``y = logit(λ + (1 − 2λ)x)`` for ``x`` in [0, 1]."""
    check_lam(lam)
    return torch.logit(lam + (1.0 - 2.0 * lam) * x)


def inverse_logit_transform(y: torch.Tensor, lam: float = 1e-6) -> torch.Tensor:
    """``x = (sigmoid(y) − λ) / (1 − 2λ)``, the inverse of :func:`logit_transform`."""
    check_lam(lam)
    return (torch.sigmoid(y) - lam) / (1.0 - 2.0 * lam)


def logit_log_det(y: torch.Tensor, lam: float = 1e-6) -> torch.Tensor:
    """``log|det ∂y/∂x|`` per sample (sum over the last dim), written in terms of ``y``."""
    check_lam(lam)
    per_dim = math.log1p(-2.0 * lam) + F.softplus(y) + F.softplus(-y)
    return per_dim.sum(dim=-1)


def logit_to_unit_log_prob(log_prob: torch.Tensor, y: torch.Tensor, lam: float = 1e-6) -> torch.Tensor:
    """Convert ``log p_y(y)`` (logit space) to ``log p_x(x)`` for pixels ``x ∈ [0, 1]^D``.

    ``log_prob`` has shape ``(n,)``, ``y`` the matching data ``(n, D)`` in logit space.
    """
    if log_prob.shape != y.shape[:-1]:
        raise ValueError(
            f"log_prob has shape {tuple(log_prob.shape)}, expected {tuple(y.shape[:-1])} "
            f"(one value per row of y)"
        )
    return log_prob + logit_log_det(y, lam)


def unit_to_levels_log_prob(log_prob_unit: torch.Tensor, dim: int, levels: int) -> torch.Tensor:
    """From ``[0, 1]^D`` to the dequantised level space ``[0, levels)^D``: ``− D·log(levels)``."""
    if dim <= 0 or levels <= 0:
        raise ValueError(f"dim and levels must be positive, got dim={dim}, levels={levels}")
    return log_prob_unit - dim * math.log(levels)


def bits_per_dim(log_prob_unit: torch.Tensor, dim: int, levels: int) -> torch.Tensor:
    """Bits per dimension of the discrete pixels: ``−(log p_x − D·log levels) / (D·log 2)``."""
    return -unit_to_levels_log_prob(log_prob_unit, dim, levels) / (dim * math.log(2.0))


def dequantise_logit(values: np.ndarray, *, levels: int, lam: float, rng: np.random.Generator) -> np.ndarray:
    """Integer pixels ``v ∈ {0..levels−1}`` → ``logit(λ + (1 − 2λ)(v + u)/levels)``, ``u ~ U[0,1)``.

    Uniform dequantisation (Theis et al. 2016) turns the discrete pixels into a continuous density
    on ``[0, 1)^D``; computed in float64 so that ``1 − λ`` is not rounded away.
    """
    check_lam(lam)
    x = (values.astype(np.float64) + rng.random(values.shape)) / levels
    u = lam + (1.0 - 2.0 * lam) * x
    return np.log(u) - np.log1p(-u)
