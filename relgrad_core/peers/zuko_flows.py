"""zuko's flows as relgrad flows: ``zuko_lu`` (LU linear layers, DenseFlow's architecture) and ``zuko_maf``.

zuko is imported inside the functions that build a flow, never at import: importing it costs about half a
second and switches off argument validation of every ``torch.distributions`` object in the process, which
a user who never trains a zuko flow should not get.

``ZukoLUFlow``: per layer ``y = P·(L·U)·z + b`` from zuko's :class:`~zuko.transforms.LULinearTransform`
(``L`` lower-triangular with a free diagonal, ``U`` unit upper-triangular; zuko forms ``L·U`` at every
call, an O(D³) product), :class:`~zuko.transforms.PermutationTransform` (a fixed ``P``, the row pivots of
the initial weight, as relgrad's own ``lu``) and :class:`~zuko.transforms.AdditiveTransform`, with relgrad's
σ between layers and zuko's ``DiagNormal(0, 1)`` base. It starts from the same orthogonal weights as a
DenseFlow of the same seed, so the two start as the same function.

``ZukoMAF``: zuko's :class:`~zuko.flows.MAF` with ``depth`` autoregressive transforms (affine, each
conditioned by a MADE with two hidden layers of ``max(D, 64)`` units, zuko's default width up to D = 64;
orders alternate). Not a stack of square layers: ``alpha`` and ``bias`` do not apply, and its inverse
takes D sequential passes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.distributions import Transform, constraints

from relgrad_core.activation import inverse_smooth_leaky_relu, log_derivative, smooth_leaky_relu
from relgrad_core.flow import LinearFn, SingularWeightError
from relgrad_core.peers.base import PeerFlow, seeded_init

#: Narrowest MADE hidden layer of ``zuko_maf`` (zuko's default width).
MAF_MIN_HIDDEN = 64


def maf_hidden(dim: int) -> int:
    """Units of each of the two hidden layers of every ``zuko_maf`` transform's MADE."""
    return max(dim, MAF_MIN_HIDDEN)


class SmoothLeakyReLUTransform(Transform):
    """relgrad's σ as a ``torch.distributions`` transform (the kind zuko composes): elementwise,
    increasing, ``log|σ'|`` from :func:`~relgrad_core.activation.log_derivative`."""

    domain = constraints.real
    codomain = constraints.real
    bijective = True
    sign = +1

    def __init__(self, alpha: float, cache_size: int = 0) -> None:
        super().__init__(cache_size=cache_size)
        self.alpha = alpha

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SmoothLeakyReLUTransform) and other.alpha == self.alpha

    def __hash__(self) -> int:
        return hash((type(self), self.alpha))

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return smooth_leaky_relu(x, self.alpha)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return inverse_smooth_leaky_relu(y, self.alpha)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return log_derivative(x, self.alpha)


def _standard_normal(dim: int):  # type: ignore[no-untyped-def]
    from zuko.distributions import DiagNormal
    from zuko.lazy import UnconditionalDistribution

    zeros = torch.zeros(dim, dtype=torch.float64)
    return UnconditionalDistribution(DiagNormal, zeros, torch.ones_like(zeros), buffer=True)


class ZukoLUFlow(PeerFlow):
    """DenseFlow's architecture with zuko's LU-parameterised linear transforms (method ``zuko_lu``)."""

    package = "zuko"

    def _build_layers(
        self, first_weight: Callable[[], torch.Tensor], bias: bool, generator: torch.Generator | None
    ) -> None:
        from zuko.lazy import Flow as LazyFlow
        from zuko.lazy import UnconditionalTransform
        from zuko.transforms import AdditiveTransform, LULinearTransform, PermutationTransform

        steps, linears = [], []
        for index in range(self.depth):
            # W = P·L·U (L unit lower); zuko's L carries the diagonal instead: W = P·(L·diag u)·(diag u⁻¹·U)
            pivots, lower, upper = torch.linalg.lu(first_weight())
            u = upper.diagonal()
            packed = torch.tril(lower * u) + torch.triu(upper / u.unsqueeze(1), 1)
            linears.append(UnconditionalTransform(LULinearTransform, packed))  # `packed`: its one parameter
            steps.append(linears[-1])
            steps.append(UnconditionalTransform(PermutationTransform, pivots.argmax(dim=1), buffer=True))
            if bias:
                steps.append(UnconditionalTransform(AdditiveTransform, torch.zeros(self.dim, dtype=u.dtype)))
            if index < self.depth - 1:
                steps.append(UnconditionalTransform(SmoothLeakyReLUTransform, alpha=self.alpha))
        # the LU modules, also listed on their own (a tuple: not registered twice) for the O(D) log-det
        self._linears = tuple(linears)
        self.peer = LazyFlow(steps, _standard_normal(self.dim))

    def peer_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.peer().log_prob(x)

    def _transforms(self) -> list[Transform]:
        return [lazy() for lazy in self.peer.transform.transforms]

    def transform(self, x: torch.Tensor, linear: LinearFn | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """zuko's maps applied one by one; σ and its log-slope relgrad's (the per-sample part of
        ``log|det ∂g/∂x|``)."""
        self._no_linear(linear)
        z, log_slope = x, x.new_zeros(x.shape[0])
        for step in self._transforms():
            if isinstance(step, SmoothLeakyReLUTransform):
                log_slope = log_slope + log_derivative(z, self.alpha).sum(dim=1)
                z = smooth_leaky_relu(z, self.alpha)
            else:
                z = step(z)
        return z, log_slope

    def _lower_diagonals(self) -> list[torch.Tensor]:
        # the packed parameter's diagonal is L's (zuko: L = tril(packed), U = triu(packed, 1) + I); read
        # directly, without building the transforms (torch.tril/triu are slow on torch 2.13's CPU)
        return [next(linear.parameters()).diagonal() for linear in self._linears]

    def weight_log_abs_det(self) -> torch.Tensor:
        """``Σ_l log|det L_l·U_l| = Σ_l Σ_i log|L_l,ii|`` (``U`` is unit-triangular, ``P`` a permutation)."""
        return torch.stack([d.abs().log().sum() for d in self._lower_diagonals()]).sum()

    def _inverse(self, z: torch.Tensor) -> torch.Tensor:
        return self.peer.transform().inv(z)

    def check_invertible(self) -> None:
        super().check_invertible()
        for index, diagonal in enumerate(self._lower_diagonals()):
            if not bool((diagonal != 0).all()):
                raise SingularWeightError(f"layer {index}: a diagonal entry of L is 0, the layer is singular")


class ZukoMAF(PeerFlow):
    """zuko's masked autoregressive flow with ``depth`` transforms (method ``zuko_maf``)."""

    package = "zuko"
    initial_weights = "identity"  # no square weights: skip the QR of an orthogonal init

    def _build_layers(
        self, first_weight: Callable[[], torch.Tensor], bias: bool, generator: torch.Generator | None
    ) -> None:
        from zuko.flows import MAF

        hidden = maf_hidden(self.dim)
        with seeded_init(generator):  # zuko's nn.Linear layers draw from torch's global RNG
            self.peer = MAF(self.dim, transforms=self.depth, hidden_features=(hidden, hidden))

    def peer_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.peer().log_prob(x)

    def transform(self, x: torch.Tensor, linear: LinearFn | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """zuko's autoregressive transforms one by one: ``z`` and the per-sample ``log|det ∂g/∂x|``
        (all of it depends on the data)."""
        self._no_linear(linear)
        z, log_det = x, x.new_zeros(x.shape[0])
        for lazy in self.peer.transform.transforms:
            z, ladj = lazy().call_and_ladj(z)
            log_det = log_det + ladj
        return z, log_det

    def weight_log_abs_det(self) -> torch.Tensor:
        """0: an autoregressive flow's log-det depends on the data, all of it is in :meth:`transform`."""
        return torch.zeros((), dtype=self.dtype, device=self.device)

    def _inverse(self, z: torch.Tensor) -> torch.Tensor:
        return self.peer.transform().inv(z)
