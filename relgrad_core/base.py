"""Factorised base densities ``p(z) = Π_i p_1(z_i)`` of unit scale."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

BASES = ("gaussian", "laplace", "logistic")


class BaseDensity:
    """A standard univariate density applied to every coordinate."""

    name: str = ""

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Elementwise ``log p_1(z)`` (same shape as ``z``); sum over the last axis for the joint."""
        raise NotImplementedError

    def sample(
        self,
        shape: tuple[int, ...],
        *,
        device: torch.device,
        dtype: torch.dtype,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Gaussian(BaseDensity):
    """``log p(z) = −z²/2 − log(2π)/2``."""

    name = "gaussian"
    _const = 0.5 * math.log(2.0 * math.pi)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * z.square() - self._const

    def sample(self, shape, *, device, dtype, generator=None):
        return torch.randn(shape, device=device, dtype=dtype, generator=generator)


class Laplace(BaseDensity):
    """``log p(z) = −|z| − log 2``."""

    name = "laplace"

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return -z.abs() - math.log(2.0)

    def sample(self, shape, *, device, dtype, generator=None):
        u = torch.rand(shape, device=device, dtype=dtype, generator=generator)
        # inverse CDF; u in [0, 1) so 1 - 2|u - 1/2| > 0 except at u = 0, which log1p(-1) would hit
        u = u.clamp_min(torch.finfo(dtype).tiny) - 0.5
        return -torch.sign(u) * torch.log1p(-2.0 * u.abs())


class Logistic(BaseDensity):
    """``log p(z) = −softplus(z) − softplus(−z)`` (symmetric and overflow-safe)."""

    name = "logistic"

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return -F.softplus(z) - F.softplus(-z)

    def sample(self, shape, *, device, dtype, generator=None):
        tiny = torch.finfo(dtype).tiny
        u = torch.rand(shape, device=device, dtype=dtype, generator=generator).clamp(
            tiny, 1 - torch.finfo(dtype).eps
        )
        return torch.log(u) - torch.log1p(-u)


def make_base(name: str) -> BaseDensity:
    """Base density by name: one of :data:`BASES`."""
    table: dict[str, type[BaseDensity]] = {
        "gaussian": Gaussian,
        "laplace": Laplace,
        "logistic": Logistic,
    }
    if name not in table:
        raise ValueError(f"unknown base density {name!r}; choose one of {', '.join(BASES)}")
    return table[name]()
