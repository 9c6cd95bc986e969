"""Standard-normal data of any dimension, for timing-only runs (where content does not matter)."""

from __future__ import annotations

import math

import torch

from relgrad_core.checks import check_dtype, check_positive_int, check_seed
from relgrad_core.data.dataset import Dataset


def standard_normal_log_prob(x: torch.Tensor) -> torch.Tensor:
    """``log N(x; 0, I) = −½‖x‖² − (D/2)·log 2π`` per row."""
    return -0.5 * x.pow(2).sum(dim=-1) - 0.5 * x.shape[-1] * math.log(2.0 * math.pi)


def load_noise(
    *,
    dim: int,
    n_train: int = 5000,
    n_val: int = 1000,
    n_test: int = 1000,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Dataset:
    """i.i.d. ``N(0, I_dim)`` rows drawn with a seeded torch generator.

    Defaults are smaller than the toy sets' because timing runs go to D in the tens of thousands
    (5000 × 20000 float32 is already 400 MB); pass sizes explicitly for anything else.
    """
    name = "noise"
    check_positive_int("dim", dim, where=name)
    sizes = [
        check_positive_int(f"n_{s}", n, where=name)
        for n, s in ((n_train, "train"), (n_val, "val"), (n_test, "test"))
    ]
    check_seed(seed)
    check_dtype(dtype)

    generator = torch.Generator().manual_seed(seed)
    train, val, test = (torch.randn(n, dim, generator=generator, dtype=dtype) for n in sizes)
    return Dataset(
        name=name,
        train=train,
        val=val,
        test=test,
        transform="none (i.i.d. standard normal)",
        true_log_prob=standard_normal_log_prob,
        true_test_ll=float(standard_normal_log_prob(test.double()).mean()),
        info={"seed": seed, "purpose": "timing only"},
    )
