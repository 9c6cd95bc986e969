"""Fully connected invertible flows ``z = g(x)`` with smooth leaky ReLU activations.

``y_l = z_{l-1} W_lᵀ + b_l``, ``z_l = σ(y_l)`` for ``l < L`` and ``z_L = y_L`` (last layer affine), so

    log p(x) = Σ_i log p_1(z_{L,i}) + Σ_{l<L} Σ_i log σ'(y_{l,i}) + Σ_l log|det W_l|.

The first two sums form the *data term* (O(B·D) given the forward pass); the last is the *log-det term*,
which depends on the weights only and is what the relative gradient avoids differentiating through.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from relgrad_core.activation import (
    check_alpha,
    inverse_smooth_leaky_relu,
    log_derivative,
    smooth_leaky_relu,
)
from relgrad_core.base import BaseDensity, make_base
from relgrad_core.checks import check_batch, check_positive_int
from relgrad_core.device import resolve_device

LinearFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


class SingularWeightError(ValueError):
    """A layer's weight matrix is (numerically) singular, so the flow is not invertible."""


def random_orthogonal(dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Haar-distributed orthogonal matrix (QR of a Gaussian matrix with the signs of R's diagonal fixed)."""
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r)).unsqueeze(0)


#: Initial weights: Haar-random orthogonal (the default), or the identity for weights set afterwards.
INITS: tuple[str, ...] = ("orthogonal", "identity")


class Flow(nn.Module):
    """What every flow here shares: the base density, σ between layers, exact log-density and sampling.

    Subclasses provide ``layers`` (each with ``.weight`` D×D and ``.bias`` D or None) and
    :meth:`weight_log_abs_det` (differentiable ``Σ_l log|det W_l|``).
    """

    layers: nn.ModuleList

    def __init__(
        self,
        dim: int,
        depth: int,
        *,
        alpha: float = 0.3,
        bias: bool = True,
        base: str = "gaussian",
        device: str | torch.device | None = "cpu",
        dtype: torch.dtype = torch.float32,
        seed: int | None = None,
        init: str = "orthogonal",
    ) -> None:
        super().__init__()
        check_positive_int("dim", dim)
        check_positive_int("depth", depth)
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
        self.dim = dim
        self.depth = depth
        self.alpha = check_alpha(alpha)
        self.has_bias = bias
        self.base_name = base
        self.base: BaseDensity = make_base(base)
        self._logdet_cache: tuple[tuple, torch.Tensor] | None = None
        # orthogonal init drawn in float64 on the CPU: the same seed gives the same flow on any device
        generator = torch.Generator().manual_seed(seed) if seed is not None else None

        # "identity" is for callers that set the weights themselves (the teacher): an O(D³) QR saved per layer
        def first_weight() -> torch.Tensor:
            if init == "identity":
                return torch.eye(dim, dtype=torch.float64)
            return random_orthogonal(dim, generator)

        self._build_layers(first_weight, bias, generator)
        self.to(device=resolve_device(device), dtype=dtype)

    # --- pieces the subclasses define -------------------------------------------------------
    def _build_layers(
        self, first_weight: Callable[[], torch.Tensor], bias: bool, generator: torch.Generator | None
    ) -> None:
        """Create the parameters: ``depth`` layers from :meth:`_make_layer`, each starting at a fresh
        ``first_weight()``. A flow built from another library's modules (:mod:`relgrad_core.peers`)
        creates them here instead, seeded from ``generator`` (``None``: unseeded)."""
        self.layers = nn.ModuleList(self._make_layer(first_weight(), bias) for _ in range(self.depth))

    def _make_layer(self, weight: torch.Tensor, bias: bool) -> nn.Module:
        """A layer computing ``y = z Wᵀ + b`` that starts at ``weight`` (float64) and a zero bias."""
        raise NotImplementedError

    def weight_log_abs_det(self) -> torch.Tensor:
        """``Σ_l log|det W_l|`` as a differentiable scalar."""
        raise NotImplementedError

    def _layer_inverse(self, index: int, y: torch.Tensor) -> torch.Tensor:
        """Solve ``y = z Wᵀ + b`` for ``z`` in layer ``index``."""
        raise NotImplementedError

    # --- shared machinery -------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def _params_fingerprint(self) -> tuple:
        """Identity and content summary of every parameter: the key of the log-det cache.

        Version counters alone are not enough: fused optimizers (``Adam(fused=True)``) update parameters
        in place without bumping them. Sums of the entries and of their squares (accumulated in float64)
        change with any optimizer step; computing them is O(D²), negligible next to a batch's O(B·D²).
        """
        with torch.no_grad():
            params = list(self.parameters())
            sums = torch.stack(
                [
                    torch.stack([p.sum(dtype=torch.float64), p.square().sum(dtype=torch.float64)])
                    for p in params
                ]
            )
        identity = tuple((p.data_ptr(), p._version, p.dtype, str(p.device)) for p in params)
        return identity, tuple(sums.flatten().tolist())

    def cached_weight_log_abs_det(self) -> torch.Tensor:
        """``Σ_l log|det W_l|`` computed once per parameter state and reused by every evaluation batch
        (keyed on :meth:`_params_fingerprint`)."""
        key = self._params_fingerprint()
        if self._logdet_cache is None or self._logdet_cache[0] != key:
            with torch.no_grad():
                value = self.weight_log_abs_det().detach()
            self._logdet_cache = (key, value)
        return self._logdet_cache[1]

    def check_input(self, x: torch.Tensor, name: str = "input") -> torch.Tensor:
        """``x`` checked and cast to the flow's dtype and device (:func:`relgrad_core.checks.check_batch`).

        Every public entry point that takes samples runs this once; the inner loops of ``fit`` and
        ``time_step`` then work on the checked tensor without re-checking it per step.
        """
        return check_batch(x, dim=self.dim, dtype=self.dtype, device=self.device, name=name)

    def hidden(self, x: torch.Tensor, linear: LinearFn | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Push ``x`` through all layers but the last: ``z_{L-1}`` and the per-sample
        ``Σ_{l<L} Σ_i log σ'(y_{l,i})``.

        By default each layer computes its own ``y``; a ``linear(z, weight, bias)`` replaces that to change
        only how the weights receive gradients (the relative method plugs in its autograd function here).
        """
        z = x
        log_slope = x.new_zeros(x.shape[0])
        for layer in self.layers[:-1]:
            y = layer(z) if linear is None else linear(z, layer.weight, layer.bias)
            log_slope = log_slope + log_derivative(y, self.alpha).sum(dim=1)
            z = smooth_leaky_relu(y, self.alpha)
        return z, log_slope

    def transform(self, x: torch.Tensor, linear: LinearFn | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``z_L = g(x)`` and the per-sample ``Σ_{l<L} Σ_i log σ'(y_{l,i})`` (see :meth:`hidden`)."""
        z, log_slope = self.hidden(x, linear)
        last = self.layers[-1]
        return (last(z) if linear is None else linear(z, last.weight, last.bias)), log_slope

    def data_log_prob(self, x: torch.Tensor, linear: LinearFn | None = None) -> torch.Tensor:
        """Per-sample data term ``Σ_i log p_1(z_{L,i}) + Σ_{l<L} Σ_i log σ'(y_{l,i})`` (no log-det)."""
        z, log_slope = self.transform(x, linear)
        return self.base.log_prob(z).sum(dim=1) + log_slope

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, log|det ∂g/∂x|)`` per sample, exact.

        With gradients enabled the log-det term is differentiated through (Euclidean gradient); without,
        it comes from the per-version cache.
        """
        x = self.check_input(x)
        z, log_slope = self.transform(x)
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters()):
            weight_term = self.weight_log_abs_det()
        else:
            weight_term = self.cached_weight_log_abs_det()
        return z, log_slope + weight_term

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact ``log p(x)`` per sample."""
        z, log_abs_det = self(x)
        return self.base.log_prob(z).sum(dim=1) + log_abs_det

    def check_invertible(self) -> None:
        """Raise :class:`SingularWeightError` naming the first layer whose weight is numerically singular.

        Criterion: the LU pivots' magnitude ratio ``min|U_ii| / max|U_ii|`` below ``D·eps`` (the point at
        which a solve loses every significant digit), or any non-finite entry. One O(D³) factorisation
        per layer, run once before training, never per step.
        """
        with torch.no_grad():
            for index, layer in enumerate(self.layers):
                weight = layer.weight
                if not bool(torch.isfinite(weight).all()):
                    raise SingularWeightError(f"layer {index}: weight has non-finite entries")
                pivots = torch.linalg.lu_factor_ex(weight)[0].diagonal().abs()
                largest = pivots.max()
                eps = torch.finfo(weight.dtype).eps
                if largest == 0 or pivots.min() / largest < self.dim * eps:
                    raise SingularWeightError(
                        f"layer {index}: weight matrix is singular (LU pivot ratio "
                        f"{float(pivots.min() / largest) if largest > 0 else 0.0:.3g} < D·eps); "
                        "the flow is not invertible"
                    )

    @torch.no_grad()
    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """``x = g⁻¹(z)``: per layer a linear solve, then σ⁻¹ by safeguarded Newton."""
        x = self.check_input(z, "z")
        for index in reversed(range(len(self.layers))):
            if index < len(self.layers) - 1:
                x = inverse_smooth_leaky_relu(x, self.alpha)
            x = self._layer_inverse(index, x)
        return x

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples ``g⁻¹(z)`` with ``z`` from the base density."""
        check_positive_int("number of samples", n)
        z = self.base.sample((n, self.dim), device=self.device, dtype=self.dtype, generator=generator)
        return self.inverse(z)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, depth={self.depth}, alpha={self.alpha}, bias={self.has_bias}, "
            f"base={self.base_name!r}"
        )


class DenseFlow(Flow):
    """``depth`` unconstrained square layers (``nn.Linear``) with σ between them; the paper's model.

    ``DenseFlow(dim, depth, *, alpha=0.3, bias=True, base="gaussian", device="cpu", dtype=float32,
    seed=None)``.
    Weights start orthogonal (so ``log|det W| = 0``), biases at zero; ``seed`` makes the init reproducible.
    """

    def _make_layer(self, weight: torch.Tensor, bias: bool) -> nn.Module:
        dim = weight.shape[0]
        layer = nn.Linear(dim, dim, bias=bias, dtype=weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(weight)
            if bias:
                layer.bias.zero_()
        return layer

    def weight_log_abs_det(self) -> torch.Tensor:
        return torch.stack([torch.linalg.slogdet(layer.weight)[1] for layer in self.layers]).sum()

    def _layer_inverse(self, index: int, y: torch.Tensor) -> torch.Tensor:
        layer = self.layers[index]
        if layer.bias is not None:
            y = y - layer.bias
        # z Wᵀ = y  ⇔  W zᵀ = yᵀ: one LU of W shared by the whole batch
        return torch.linalg.solve(layer.weight, y.mT).mT
