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

import torch
import torch.nn.functional as F


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
        grad_z = delta @ weight if ctx.needs_input_grad[0] else None
        # −W + δᵀ(yW) in one GEMM call (beta = −1 adds the log-det part for free)
        grad_weight = torch.addmm(weight, delta.mT, y @ weight, beta=-1.0)
        grad_bias = None
        if bias is not None:
            grad_bias = torch.addmv(bias, delta.mT, torch.addmv(torch.ones_like(y[:, 0]), y, bias), beta=-1.0)
        return grad_z, grad_weight, grad_bias


def relative_linear(z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Functional form of :class:`RelativeLinear` (the ``linear`` hook of :meth:`Flow.transform`)."""
    return RelativeLinear.apply(z, weight, bias)
