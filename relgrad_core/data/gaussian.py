"""The yardstick every density estimate is read against: a full-covariance Gaussian fitted on train.

Maximum likelihood on the training split gives ``μ = mean(x)`` and ``Σ = (1/n)·Σ_n (x_n − μ)(x_n − μ)ᵀ``;
the test log-likelihood per sample is

    log N(x; μ, Σ) = −½ (x − μ)ᵀ Σ⁻¹ (x − μ) − ½ log det Σ − (D/2) log 2π,

computed in float64 through the Cholesky factor ``Σ = LLᵀ`` (``log det Σ = 2 Σ log L_ii``, and the
quadratic form is ``‖L⁻¹(x − μ)‖²``). A flow with one affine layer and a Gaussian base can represent
this density exactly, so a flow that does not beat it has learned nothing beyond second moments.
The Gaussian family is closed under affine maps, so the fit commutes with standardisation: the value
on the tensors plus ``Dataset.ll_offset`` equals the fit on the unstandardised data.
"""

from __future__ import annotations

import math

import torch

from relgrad_core.data._degenerate import DEPENDENT_RTOL
from relgrad_core.data.dataset import Dataset

SINGULAR_RESIDUAL = DEPENDENT_RTOL  # float64 rounding leaves ~1e-15; real data are many orders above this


def gaussian_log_prob(train: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``log N(x_n; μ, Σ)`` per row of ``x`` for the Gaussian MLE ``(μ, Σ)`` of ``train`` (float64).

    Raises:
        ValueError: fewer training rows than ``dim + 1`` or a singular sample covariance (the MLE
            does not exist then: some direction has zero training variance).
    """
    train64 = train.detach().to(device="cpu", dtype=torch.float64)
    n, dim = train64.shape
    if n <= dim:
        raise ValueError(
            f"a full-covariance Gaussian in {dim} dimensions needs more than {dim} training rows, got {n}"
        )
    mean = train64.mean(dim=0)
    centred = train64 - mean
    covariance = centred.mT @ centred / n
    chol, info = torch.linalg.cholesky_ex(covariance)
    # L_ii² is the variance of column i left after regressing on the columns before it; relative to the
    # column's own variance it is ~ machine precision when the column is a combination of earlier ones
    residual = torch.diagonal(chol).square() / torch.diagonal(covariance)
    if int(info) != 0 or not bool((residual > SINGULAR_RESIDUAL).all()):
        raise ValueError(
            "the training covariance is singular (a linear combination of the columns is constant); "
            "the Gaussian maximum-likelihood fit does not exist"
        )
    diff = (x.detach().to(device="cpu", dtype=torch.float64) - mean).mT
    whitened = torch.linalg.solve_triangular(chol, diff, upper=False)
    log_det = 2.0 * torch.log(torch.diagonal(chol)).sum()
    return -0.5 * whitened.square().sum(dim=0) - 0.5 * log_det - 0.5 * dim * math.log(2.0 * math.pi)


def gaussian_test_ll(dataset: Dataset, *, reported: bool = True) -> float:
    """Mean test log-likelihood per sample of the full-covariance Gaussian MLE on ``dataset.train``.

    With ``reported`` (default) the value is in the data set's reported space (``dataset.ll_space``,
    i.e. the tensors' value plus ``dataset.ll_offset``), the same space as
    ``dataset.reported_ll(−evaluate_nll(flow, dataset.test))``; with ``reported=False`` it is on the
    tensors, like ``−evaluate_nll`` itself.
    """
    if not isinstance(dataset, Dataset):
        raise TypeError(f"gaussian_test_ll needs a Dataset, got {type(dataset).__name__}")
    try:
        value = float(gaussian_log_prob(dataset.train, dataset.test).mean())
    except ValueError as err:
        raise ValueError(f"{dataset.name}: {err}") from err
    return dataset.reported_ll(value) if reported else value
