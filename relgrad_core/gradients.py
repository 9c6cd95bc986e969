"""Every gradient a dense flow can be trained with, behind one call: :func:`backward`.

All methods optimise the mean NLL of a batch, ``−mean_n log p(x_n)``; they differ in the direction they put
into ``.grad`` and in its cost per layer (B = batch, D = dimension):

==========  =================================================================  ==========
method      direction                                                          cost
==========  =================================================================  ==========
relative    Euclidean gradient · W̃ᵀW̃ (see :mod:`relgrad_core.relative`)        O(B·D²)
ordinary    autograd on the data term, log-det part added as −W⁻ᵀ (explicit)    O(B·D² + D³)
autodiff    autograd through ``torch.linalg.slogdet(W)``                       O(B·D² + D³)
jacobian    autograd through log|det| of each sample's full Jacobian of g      O(B·D³)
mlp         autograd on the data term only (no log-det): the cost floor        O(B·D²)
lu          Euclidean gradient of an :class:`~relgrad_core.lu_flow.LUFlow`      O(B·D²)
==========  =================================================================  ==========
"""

from __future__ import annotations

import torch

from relgrad_core.base import Gaussian
from relgrad_core.flow import DenseFlow, Flow
from relgrad_core.lu_flow import LUFlow
from relgrad_core.relative import RelativeGaussianHead, relative_linear

METHODS: tuple[str, ...] = ("relative", "ordinary", "autodiff", "jacobian", "mlp", "lu")


def check_method(flow: Flow, method: str) -> None:
    """Raise ``ValueError`` if ``method`` is unknown or cannot train ``flow``."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "lu" and not isinstance(flow, LUFlow):
        raise ValueError("method 'lu' trains an LUFlow; build one with make_flow('lu', ...)")
    if method != "lu" and not isinstance(flow, DenseFlow):
        raise ValueError(f"method {method!r} trains a DenseFlow, got {type(flow).__name__}")


def backward(flow: Flow, x: torch.Tensor, method: str) -> torch.Tensor:
    """Fill ``p.grad`` of every parameter of ``flow`` with ``method``'s direction for the mean NLL of ``x``.

    Any ``torch.optim`` optimizer can then ``step()``. Existing gradients are replaced, not accumulated.

    Returns:
        The mean *data-term* NLL of the batch, ``−mean_n[log p_1(z_n) + Σ log σ'(y_n)]`` (detached);
        the log-det term is left out because the relative method never computes it.
    """
    check_method(flow, method)
    flow._check_input(x)
    for p in flow.parameters():
        p.grad = None
    if method == "jacobian":
        return _jacobian_backward(flow, x)
    if method == "relative" and isinstance(flow.base, Gaussian):
        # the last layer fused with the Gaussian base gets its input gradient for free
        z, log_slope = flow.hidden(x, relative_linear)
        last = flow.layers[-1]
        data_nll = RelativeGaussianHead.apply(z, last.weight, last.bias) - log_slope.mean()
    else:
        linear = relative_linear if method == "relative" else None
        data_nll = -flow.data_log_prob(x, linear).mean()
    loss = data_nll
    if method in ("autodiff", "lu"):
        loss = data_nll - flow.weight_log_abs_det()
    loss.backward()
    if method == "ordinary":
        with torch.no_grad():
            for layer in flow.layers:
                # ∂(−log|det W|)/∂W = −W⁻ᵀ, formed explicitly: the O(D³) step the paper removes
                layer.weight.grad.sub_(torch.linalg.inv(layer.weight).mT)
    return data_nll.detach()


def _jacobian_backward(flow: Flow, x: torch.Tensor) -> torch.Tensor:
    """The paper's "autodiff" baseline: per-sample Jacobians ``J_n = ∂g/∂x (x_n)`` by ``torch.func``,
    ``log|det J_n|`` by LU, and autograd through all of it (a B×D×D tensor and B factorisations)."""
    from torch.func import jacfwd, vmap

    def g(sample: torch.Tensor) -> torch.Tensor:
        z, _ = flow.transform(sample.unsqueeze(0))
        return z.squeeze(0)

    z, log_slope = flow.transform(x)
    jacobians = vmap(jacfwd(g))(x)
    base_term = flow.base.log_prob(z).sum(dim=1)
    (-(base_term + _per_matrix_logabsdet(jacobians)).mean()).backward()
    # report the same data term as the other methods: base term plus the σ' part of log|det J|
    return -(base_term + log_slope).mean().detach()


def _per_matrix_logabsdet(matrices: torch.Tensor) -> torch.Tensor:
    """``log|det|`` of each matrix of a batch.

    On the CPU, torch 2.13 with several threads factorises *batches* of matrices above D ≈ 150 wrongly
    (pytorch/pytorch#142815) while single matrices are fine, so the batch is looped there.
    """
    if matrices.device.type == "cpu":
        return torch.stack([torch.linalg.slogdet(m)[1] for m in matrices.unbind(0)])
    return torch.linalg.slogdet(matrices)[1]
