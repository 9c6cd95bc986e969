"""The relative gradient of one layer, as an autograd function.

For ``y = z Wᵀ + b`` and the augmented matrix ``W̃ = [[W, b], [0, 1]]``, the relative direction of the mean
NLL is the Euclidean gradient ``G = [G_W, G_b]`` right-multiplied by ``W̃ᵀW̃``. With ``δ = ∂(mean data-term
NLL)/∂y`` (B×D, already divided by B) and the log-det term contributing ``G = [−W⁻ᵀ, 0]``:

    ΔW = δᵀ (y W) − W              Δb = δᵀ (1 + y b) − b

because ``z Wᵀ W + b W = y W`` and ``z Wᵀ b + bᵀb = y·b``, while ``−W⁻ᵀ WᵀW = −W``, ``−W⁻ᵀ Wᵀ b = −b``.
Everything is a B×D by D×D product: O(B·D²), no inverse, no factorisation. ``y`` is the forward output,
which autograd would keep anyway, so the function saves nothing extra.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _parameter_directions(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    y: torch.Tensor,
    delta: torch.Tensor,
    y_weight: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``ΔW = δᵀ(yW) − W`` and ``Δb = δᵀ(1 + y·b) − b`` given the product ``yW``."""
    # a plain mm + in-place subtraction beats addmm(beta=−1) on CPU BLAS
    grad_weight = (delta.mT @ y_weight).sub_(weight)
    grad_bias = None
    if bias is not None:
        grad_bias = torch.addmv(bias, delta.mT, torch.addmv(torch.ones_like(y[:, 0]), y, bias), beta=-1.0)
    return grad_weight, grad_bias


class RelativeLinear(torch.autograd.Function):
    """``y = z Wᵀ + b`` whose backward writes the relative direction (log-det term included) into
    ``W.grad``/``b.grad`` and passes the ordinary ``∂/∂z = δ W`` down the network."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        y = F.linear(z, weight, bias)
        ctx.save_for_backward(weight, bias, y)
        return y

    @staticmethod
    def backward(ctx, delta: torch.Tensor):
        weight, bias, y = ctx.saved_tensors
        if ctx.needs_input_grad[0]:
            # δW (the input gradient) and yW share the right factor: one GEMM over the stacked rows reads
            # W once instead of twice (measurably faster on CPU, never slower)
            both = torch.cat([delta, y]) @ weight
            grad_z, y_weight = both.split(delta.shape[0])
        else:
            grad_z, y_weight = None, y @ weight
        return (grad_z, *_parameter_directions(weight, bias, y, delta, y_weight))


class RelativeGaussianHead(torch.autograd.Function):
    """The last (affine) layer fused with a standard Gaussian base: returns the mean base NLL
    ``mean_n ||y_n||²/2 + (D/2)·log 2π`` of ``y = z Wᵀ + b``.

    Here ``δ = g·y/B`` exactly (``g`` the incoming scalar gradient), so the input gradient ``δW = g·(yW)/B``
    is a by-product of the relative direction's ``yW``: this layer costs 2 B×D×D products in backward
    instead of 3 (what that makes of a whole step: the FLOP model in :mod:`relgrad_core.methods`).
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        y = F.linear(z, weight, bias)
        ctx.save_for_backward(weight, bias, y)
        batch, dim = y.shape
        return 0.5 * y.square().sum() / batch + 0.5 * dim * math.log(2 * math.pi)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        weight, bias, y = ctx.saved_tensors
        delta = y * (grad / y.shape[0])
        y_weight = y @ weight
        grad_z = y_weight * (grad / y.shape[0]) if ctx.needs_input_grad[0] else None
        return (grad_z, *_parameter_directions(weight, bias, y, delta, y_weight))


def relative_linear(z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Functional form of :class:`RelativeLinear` (the ``linear`` hook of :meth:`Flow.transform`)."""
    return RelativeLinear.apply(z, weight, bias)
