"""``teacher``: samples of a random, well-conditioned :class:`~relgrad_core.flow.DenseFlow`.

The data-generating density is a flow of exactly the student's family, so the true test log-likelihood is
known at any D and the KL gap of a trained model, ``E[log p_true] − E[log p_model]``, can be estimated.
"""

from __future__ import annotations

import math

import torch

from relgrad_core.checks import check_positive_int
from relgrad_core.data.dataset import Dataset
from relgrad_core.flow import DenseFlow, random_orthogonal


def make_teacher(
    dim: int,
    depth: int = 2,
    *,
    alpha: float = 0.3,
    base: str = "gaussian",
    condition: float = 4.0,
    bias_scale: float = 0.5,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> DenseFlow:
    """A float64 DenseFlow with weights ``U·diag(s)·Vᵀ``, singular values ``s`` log-uniform in
    ``[1/√κ, √κ]`` (condition number ≤ κ = ``condition``) and N(0, bias_scale²) biases."""
    if condition < 1:
        raise ValueError(f"condition must be >= 1, got {condition}")
    generator = torch.Generator().manual_seed(seed)
    teacher = DenseFlow(
        dim, depth, alpha=alpha, base=base, dtype=torch.float64, device=device, init="identity"
    )
    half_log = 0.5 * math.log(condition)
    with torch.no_grad():
        for layer in teacher.layers:
            u = random_orthogonal(dim, generator)
            v = random_orthogonal(dim, generator)
            s = torch.exp((2 * torch.rand(dim, generator=generator, dtype=torch.float64) - 1) * half_log)
            layer.weight.copy_(
                (u * s) @ v.mT
            )  # the init is drawn on the CPU, so any device gives the same teacher
            layer.bias.copy_(bias_scale * torch.randn(dim, generator=generator, dtype=torch.float64))
    teacher.requires_grad_(False)
    return teacher


def load_teacher(
    *,
    dim: int,
    depth: int = 2,
    n_train: int = 10000,
    n_val: int = 2000,
    n_test: int = 2000,
    alpha: float = 0.3,
    base: str = "gaussian",
    condition: float = 4.0,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> Dataset:
    """Train/val/test samples of :func:`make_teacher` (sampled in float64, then cast to ``dtype``).

    ``device`` is where the teacher is built and sampled (its O(D³) init and solves are worth a GPU at
    large D); the splits are returned on the CPU like every other data set.
    """
    for name, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        check_positive_int(name, value)
    teacher = make_teacher(dim, depth, alpha=alpha, base=base, condition=condition, seed=seed, device=device)
    generator = torch.Generator().manual_seed(seed + 1)
    z = teacher.base.sample(
        (n_train + n_val + n_test, dim), device=torch.device("cpu"), dtype=torch.float64, generator=generator
    )
    x = teacher.inverse(z.to(teacher.device))
    with torch.no_grad():
        true_test_ll = float(teacher.log_prob(x[n_train + n_val :]).mean())
    train, val, test = x.cpu().split([n_train, n_val, n_test])

    def true_log_prob(points: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            values = teacher.log_prob(points.to(dtype=torch.float64, device=teacher.device))
        return values.to(device=points.device, dtype=points.dtype)

    return Dataset(
        name="teacher",
        train=train.to(dtype),
        val=val.to(dtype),
        test=test.to(dtype),
        transform="none (samples of a random DenseFlow)",
        true_log_prob=true_log_prob,
        true_test_ll=true_test_ll,
        info={
            "dim": dim,
            "depth": depth,
            "alpha": alpha,
            "base": base,
            "condition": condition,
            "seed": seed,
            "teacher": teacher,
        },
    )
