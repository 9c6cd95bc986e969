"""What might close the relative-vs-ordinary gap: a metric without the bias, and a folded-in init.

**Bias left out of the metric** (``relative_weight_only``). The relative gradient right-multiplies the
Euclidean gradient ``[G_W, G_b]`` of each layer by ``W̃ᵀW̃`` with the augmented ``W̃ = [[W, b], [0, 1]]``,
so the bias enters the metric of the weights and the weights that of the bias. The variant takes the
metric of ``W`` alone for the weights and the plain Euclidean gradient for the bias:

    ΔW = G_W WᵀW = δᵀ z WᵀW − W = δᵀ((y − b) W) − W,        Δb = G_b = δᵀ1,

(``G_W = δᵀz − W⁻ᵀ`` and ``z Wᵀ = y − b``; ``δ`` already divided by the batch size). Still O(B·D²), no
inverse. It is registered in the core's method registry, so ``fit``/``make_flow`` take it by name.

**Standardisation folded into the first layer** (``fold_standardization``). On raw data ``x`` with
training mean μ and sd s, ``W₁ ← W₁ diag(1/s)`` and ``b₁ ← b₁ − W₁ diag(1/s) μ`` make the flow compute
at initialisation exactly what it computes on standardised data, but the first layer's bias is then
large, which the augmented metric (through ``W̃``) feels and the weight-only metric does not.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from relgrad_core import DenseFlow, FlopModel, Flow, MethodSpec, get_method, register_method

WEIGHT_ONLY = "relative_weight_only"


class WeightOnlyRelativeLinear(torch.autograd.Function):
    """``y = z Wᵀ + b``; backward writes ``ΔW = δᵀ((y − b)W) − W`` (log-det term included), the Euclidean
    ``Δb = δᵀ1``, and passes ``∂/∂z = δW`` down."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:  # type: ignore[override]
        y = F.linear(z, weight, bias)
        ctx.save_for_backward(weight, bias, y)
        return y

    @staticmethod
    def backward(ctx, delta: torch.Tensor):  # type: ignore[override]
        weight, bias, y = ctx.saved_tensors
        centred = y if bias is None else y - bias  # = z Wᵀ
        grad_weight = (delta.mT @ (centred @ weight)).sub_(weight)
        grad_bias = None if bias is None else delta.sum(dim=0)
        grad_z = delta @ weight if ctx.needs_input_grad[0] else None
        return grad_z, grad_weight, grad_bias


def weight_only_linear(z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return WeightOnlyRelativeLinear.apply(z, weight, bias)


def weight_only_direction(flow: Flow, x: torch.Tensor) -> torch.Tensor:
    """Fill ``p.grad`` with the weight-only relative direction; return the detached data-term NLL."""
    data_nll = -flow.data_log_prob(x, weight_only_linear).mean()
    data_nll.backward()
    return data_nll.detach()


def _weight_only_bd2(depth: int, gaussian_base: bool) -> float:
    # forward 2, (y − b)W and δᵀ(·) 4 per layer, input gradient 2 on every layer but the first (no fused head)
    return 6 * depth + 2 * (depth - 1)


def ensure_registered() -> str:
    """Register :data:`WEIGHT_ONLY` once per process (idempotent); returns its name."""
    try:
        get_method(WEIGHT_ONLY)
    except ValueError:
        register_method(
            MethodSpec(
                WEIGHT_ONLY,
                DenseFlow,
                weight_only_direction,
                FlopModel(_weight_only_bd2),
                order=900,
                cost="O(B·D²)",
                summary="relative gradient with the metric WᵀW of the weights only; Euclidean bias gradient",
            )
        )
    return WEIGHT_ONLY


@torch.no_grad()
def fold_standardization(flow: Flow, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Make the first layer start as ``W₁((x − μ)/s) + b₁``: ``W₁ ← W₁/s`` (columns), ``b₁ ← b₁ − W₁μ/s``."""
    first = flow.layers[0]
    mean = mean.to(device=first.weight.device, dtype=first.weight.dtype)
    std = std.to(device=first.weight.device, dtype=first.weight.dtype)
    first.weight.div_(std)
    if first.bias is not None:
        first.bias.sub_(first.weight @ mean)
