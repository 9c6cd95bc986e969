"""The gradient directions themselves, one function per method (the registry in
:mod:`relgrad_core.methods` names them, and :func:`relgrad_core.backward` dispatches to them).

Each ``direction(flow, x)`` puts its direction for the mean NLL ``−mean_n log p(x_n)`` into ``p.grad`` of
every parameter (which must be ``None`` on entry) and returns the mean *data-term* NLL
``−mean_n[log p_1(z_n) + Σ log σ'(y_n)]``, detached; the log-det term is left out because the relative
method never computes it. They check nothing: their callers validate the flow and the batch once.
"""

from __future__ import annotations

import torch

from relgrad_core.base import Gaussian
from relgrad_core.flow import Flow
from relgrad_core.relative import RelativeGaussianHead, relative_linear


def relative_direction(flow: Flow, x: torch.Tensor) -> torch.Tensor:
    """The Euclidean gradient times ``W̃ᵀW̃`` per layer (:mod:`relgrad_core.relative`): O(B·D²)."""
    if isinstance(flow.base, Gaussian):
        # the last layer fused with the Gaussian base gets its input gradient for free
        z, log_slope = flow.hidden(x, relative_linear)
        last = flow.layers[-1]
        data_nll = RelativeGaussianHead.apply(z, last.weight, last.bias) - log_slope.mean()
    else:
        data_nll = -flow.data_log_prob(x, relative_linear).mean()
    data_nll.backward()
    return data_nll.detach()


def data_term_direction(flow: Flow, x: torch.Tensor) -> torch.Tensor:
    """Autograd on the data term only, no log-det: the MLP cost floor, O(B·D²)."""
    data_nll = -flow.data_log_prob(x).mean()
    data_nll.backward()
    return data_nll.detach()


def ordinary_direction(flow: Flow, x: torch.Tensor) -> torch.Tensor:
    """Autograd on the data term plus the log-det part ``−W⁻ᵀ`` formed explicitly: O(B·D² + D³)."""
    data_nll = data_term_direction(flow, x)
    with torch.no_grad():
        for layer in flow.layers:
            # ∂(−log|det W|)/∂W = −W⁻ᵀ, formed explicitly: the O(D³) step the paper removes
            layer.weight.grad.sub_(torch.linalg.inv(layer.weight).mT)
    return data_nll


def exact_nll_direction(flow: Flow, x: torch.Tensor) -> torch.Tensor:
    """Autograd through the exact NLL, log-det by :meth:`Flow.weight_log_abs_det`: ``slogdet`` for a
    DenseFlow (O(B·D² + D³), method ``autodiff``), ``Σ ℓ`` for an LUFlow (O(B·D²), method ``lu``)."""
    data_nll = -flow.data_log_prob(x).mean()
    (data_nll - flow.weight_log_abs_det()).backward()
    return data_nll.detach()


def jacobian_direction(flow: Flow, x: torch.Tensor) -> torch.Tensor:
    """The paper's "autodiff" baseline: per-sample Jacobians ``J_n = ∂g/∂x (x_n)`` by ``torch.func``,
    ``log|det J_n|`` by LU, and autograd through all of it (a B×D×D tensor and B factorisations)."""
    from torch.func import jacfwd, vmap  # torch.func loads lazily; only this baseline needs it

    def g(sample: torch.Tensor) -> torch.Tensor:
        z, _ = flow.transform(sample.unsqueeze(0))
        return z.squeeze(0)

    z, log_slope = flow.transform(x)
    jacobians = vmap(jacfwd(g))(x)
    base_term = flow.base.log_prob(z).sum(dim=1)
    (-(base_term + per_matrix_logabsdet(jacobians)).mean()).backward()
    # report the same data term as the other methods: base term plus the σ' part of log|det J|
    return -(base_term + log_slope).mean().detach()


def per_matrix_logabsdet(matrices: torch.Tensor) -> torch.Tensor:
    """``log|det|`` of each matrix of a batch.

    On the CPU, torch 2.13 with several threads factorises *batches* of matrices above D ≈ 150 wrongly
    (pytorch/pytorch#142815) while single matrices are fine, so the batch is looped there.
    """
    if matrices.device.type == "cpu":
        return torch.stack([torch.linalg.slogdet(m)[1] for m in matrices.unbind(0)])
    return torch.linalg.slogdet(matrices)[1]
