"""nflows' LU layers as a relgrad flow: ``nflows_lu``, DenseFlow's architecture.

Per layer ``y = P·(L·U·z + b)`` from nflows' :class:`~nflows.transforms.lu.LULinear` (``L`` unit
lower-triangular, ``U`` upper-triangular with the diagonal ``softplus(·) + 10⁻³ > 0``, a bias; applied as
two dense products of the assembled triangles) and :class:`~nflows.transforms.permutations.Permutation`
(a fixed ``P``, the row pivots of the initial weight), with relgrad's σ between layers and nflows'
``StandardNormal`` base. nflows is imported only when such a flow is built.

**Initial weights.** ``U``'s diagonal is positive in nflows, so the pivoted LU ``Q = P·L·U`` of the seeded
orthogonal ``Q`` is stored with the signs ``S = sign(diag U)`` moved out: ``L' = S·L·S`` (unit lower) and
``U' = S·U`` (positive diagonal) give ``P·L'·U' = (P·S·Pᵀ)·Q``, ``Q`` with some rows negated: still
orthogonal (``log|det| = 0``), but not the very function a DenseFlow of the same seed starts as. A pivot
below twice nflows' floor ``10⁻³`` is raised to it (then the start is only nearly orthogonal).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import torch
from torch import nn

from relgrad_core.activation import inverse_smooth_leaky_relu, log_derivative, smooth_leaky_relu
from relgrad_core.flow import LinearFn
from relgrad_core.peers.base import PeerFlow


@functools.cache
def smooth_leaky_relu_class() -> type[nn.Module]:
    """relgrad's σ as an nflows ``Transform`` (the class is made on first use: nflows loads lazily)."""
    from nflows.transforms.base import Transform

    class SmoothLeakyReLU(Transform):
        """``σ`` elementwise; ``(outputs, Σ_i log σ'(inputs_i))`` per sample, as nflows transforms return."""

        def __init__(self, alpha: float) -> None:
            super().__init__()
            self.alpha = alpha

        def forward(self, inputs: torch.Tensor, context: object = None) -> tuple[torch.Tensor, torch.Tensor]:
            return smooth_leaky_relu(inputs, self.alpha), log_derivative(inputs, self.alpha).sum(dim=1)

        def inverse(self, inputs: torch.Tensor, context: object = None) -> tuple[torch.Tensor, torch.Tensor]:
            outputs = inverse_smooth_leaky_relu(inputs, self.alpha)
            return outputs, -log_derivative(outputs, self.alpha).sum(dim=1)

    return SmoothLeakyReLU


def _lu_linear(weight: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
    """An nflows ``LULinear`` holding ``S·L·S`` and ``S·U`` of ``weight = P·L·U``, and the row order ``P``."""
    from nflows.transforms.lu import LULinear

    dim = weight.shape[0]
    pivots, lower, upper = torch.linalg.lu(weight)
    signs = torch.sign(upper.diagonal())
    lower = signs.unsqueeze(1) * lower * signs
    upper = signs.unsqueeze(1) * upper
    layer = LULinear(dim, identity_init=True).to(weight.dtype)  # fill it at the init's precision
    floor = layer.eps
    diagonal = upper.diagonal().clamp(min=2 * floor)
    with torch.no_grad():
        rows, cols = (torch.as_tensor(i) for i in layer.lower_indices)
        layer.lower_entries.copy_(lower[rows, cols])
        rows, cols = (torch.as_tensor(i) for i in layer.upper_indices)
        layer.upper_entries.copy_(upper[rows, cols])
        # upper_diag = softplus(v) + eps  ⇔  v = log(expm1(diag − eps))
        layer.unconstrained_upper_diag.copy_(torch.log(torch.expm1(diagonal - floor)))
    return layer, pivots.argmax(dim=1)


class NflowsLUFlow(PeerFlow):
    """DenseFlow's architecture with nflows' ``LULinear`` layers (method ``nflows_lu``)."""

    package = "nflows"

    def _build_layers(
        self, first_weight: Callable[[], torch.Tensor], bias: bool, generator: torch.Generator | None
    ) -> None:
        from nflows.distributions.normal import StandardNormal
        from nflows.flows.base import Flow as NflowsFlow
        from nflows.transforms.base import CompositeTransform
        from nflows.transforms.permutations import Permutation

        if not bias:
            raise ValueError("nflows' LULinear always has a bias: bias=False is not available for nflows_lu")
        activation = smooth_leaky_relu_class()
        steps: list[nn.Module] = []
        for index in range(self.depth):
            linear, order = _lu_linear(first_weight())
            steps += [linear, Permutation(order)]
            if index < self.depth - 1:
                steps.append(activation(self.alpha))
        # the same modules as the peer's, listed for the step-by-step harness (a tuple: not registered twice)
        self._steps = tuple(steps)
        self.peer = NflowsFlow(CompositeTransform(steps), StandardNormal([self.dim]))

    def peer_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.peer.log_prob(x)

    def transform(self, x: torch.Tensor, linear: LinearFn | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """nflows' maps applied one by one; σ and its log-slope relgrad's."""
        self._no_linear(linear)
        activation = smooth_leaky_relu_class()
        z, log_slope = x, x.new_zeros(x.shape[0])
        for step in self._steps:
            if isinstance(step, activation):
                log_slope = log_slope + log_derivative(z, self.alpha).sum(dim=1)
                z = smooth_leaky_relu(z, self.alpha)
            else:
                z = step(z)[0]
        return z, log_slope

    def weight_log_abs_det(self) -> torch.Tensor:
        """``Σ_l log det U_l``: nflows' own ``LULinear.logabsdet`` of each layer."""
        from nflows.transforms.lu import LULinear

        return torch.stack([s.logabsdet() for s in self._steps if isinstance(s, LULinear)]).sum()

    def _inverse(self, z: torch.Tensor) -> torch.Tensor:
        # nflows 0.14 solves with torch.triangular_solve, which torch 2 deprecates with a warning per call
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="torch.triangular_solve is deprecated")
            for step in reversed(self._steps):
                z = step.inverse(z)[0]
        return z
