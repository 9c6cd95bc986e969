"""The structured alternative: LU-parameterised layers ``W = P·L·U`` (as in Glow, zuko, nflows).

``P`` is a fixed permutation, ``L`` unit lower-triangular, ``U = strict_upper + diag(s·exp(ℓ))`` with fixed
signs ``s``; ``log|det W| = Σ_i ℓ_i`` costs O(D) and its Euclidean gradient is cheap by construction. The
price is a restricted parameterisation (a fixed ``P`` and no pivoting) and, with dense BLAS, two triangular
matrix products per layer instead of one full one.
"""

from __future__ import annotations

import torch
from torch import nn

from relgrad_core.flow import Flow, SingularWeightError


class LULinear(nn.Module):
    """``y = z Wᵀ + b`` with ``W = P·L·U``, applied factor by factor (never forming W): O(B·D²)."""

    def __init__(self, weight: torch.Tensor, bias: bool = True) -> None:
        super().__init__()
        dim = weight.shape[0]
        perm_matrix, lower, upper = torch.linalg.lu(weight)
        diag = torch.diagonal(upper)
        self.lower = nn.Parameter(torch.tril(lower, -1))
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_diag = nn.Parameter(diag.abs().log())
        self.register_buffer("sign", torch.sign(diag))
        # P = I[perm] (rows permuted), so (W zᵀ)ᵀ = (z Uᵀ Lᵀ)[:, perm]
        self.register_buffer("perm", perm_matrix.argmax(dim=1))
        self.register_buffer("eye", torch.eye(dim, dtype=weight.dtype))
        # masks instead of torch.tril/triu in the hot path: on torch 2.13 CPU those take milliseconds
        # even for tiny matrices, an elementwise product does not
        ones = torch.ones(dim, dim, dtype=weight.dtype)
        self.register_buffer("strict_lower_mask", torch.tril(ones, -1))
        self.register_buffer("strict_upper_mask", torch.triu(ones, 1))
        self.bias = nn.Parameter(torch.zeros(dim, dtype=weight.dtype)) if bias else None

    def lower_factor(self) -> torch.Tensor:
        return self.lower * self.strict_lower_mask + self.eye

    def upper_factor(self) -> torch.Tensor:
        return self.upper * self.strict_upper_mask + torch.diag(self.sign * self.log_diag.exp())

    @property
    def weight(self) -> torch.Tensor:
        """The dense ``W = P·L·U`` (an O(D³) product: for inspection, not for training)."""
        return (self.lower_factor() @ self.upper_factor())[self.perm]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        y = (z @ self.upper_factor().mT) @ self.lower_factor().mT
        y = y[:, self.perm]
        return y if self.bias is None else y + self.bias

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        if self.bias is not None:
            y = y - self.bias
        unpermuted = torch.empty_like(y)
        unpermuted[:, self.perm] = y
        # W zᵀ = yᵀ ⇒ L (U zᵀ) = Pᵀ yᵀ: two triangular solves
        a = torch.linalg.solve_triangular(self.lower_factor(), unpermuted.mT, upper=False, unitriangular=True)
        return torch.linalg.solve_triangular(self.upper_factor(), a, upper=True).mT

    def log_abs_det(self) -> torch.Tensor:
        return self.log_diag.sum()


class LUFlow(Flow):
    """:class:`~relgrad_core.flow.DenseFlow`'s architecture with LU-parameterised layers.

    Initialised from the LU factors of a random orthogonal matrix (the same init as DenseFlow, so the two
    start from the same function for the same seed). Trained with the Euclidean gradient (method ``"lu"``).
    """

    def _make_layer(self, weight: torch.Tensor, bias: bool) -> nn.Module:
        return LULinear(weight, bias=bias)

    def weight_log_abs_det(self) -> torch.Tensor:
        return torch.stack([layer.log_abs_det() for layer in self.layers]).sum()

    def _layer_inverse(self, index: int, y: torch.Tensor) -> torch.Tensor:
        return self.layers[index].inverse(y)

    def check_invertible(self) -> None:
        # det W = ± exp(Σ ℓ) > 0 whenever ℓ is finite: only non-finite parameters can break invertibility
        for index, layer in enumerate(self.layers):
            if not all(bool(torch.isfinite(p).all()) for p in layer.parameters()):
                raise SingularWeightError(f"layer {index}: LU factors have non-finite entries")
