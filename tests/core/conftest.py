"""Shared builders for the core tests."""

import sys

import pytest
import torch

import relgrad_core.methods as methods
from relgrad_core.flow import DenseFlow
from relgrad_core.peers import PEERS, register_peers


def perturbed_flow(
    dim: int,
    depth: int,
    *,
    bias: bool = True,
    seed: int = 0,
    alpha: float = 0.3,
    dtype: torch.dtype = torch.float64,
) -> DenseFlow:
    """A DenseFlow moved away from its orthogonal/zero-bias init, so no term vanishes by accident.

    The weight noise has spectral norm ≈ 0.6 whatever the dim, so the weights stay well conditioned.
    """
    flow = DenseFlow(dim, depth, alpha=alpha, bias=bias, dtype=dtype, seed=seed)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for layer in flow.layers:
            layer.weight.add_(0.3 / dim**0.5 * torch.randn(dim, dim, generator=g, dtype=dtype))
            if bias:
                layer.bias.add_(0.5 * torch.randn(dim, generator=g, dtype=dtype))
    return flow


@pytest.fixture
def make_perturbed():
    return perturbed_flow


def hide_peers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the registry what it is on a machine without the peers extra (monkeypatch restores it): the
    peer methods unregistered, their packages unimportable, and the peers module's registration rerun."""
    monkeypatch.setattr(methods, "_REGISTRY", {k: v for k, v in methods._REGISTRY.items() if not v.peer})
    monkeypatch.setattr(methods, "_UNAVAILABLE", {})
    for package in {p.package for p in PEERS}:
        monkeypatch.setitem(sys.modules, package, None)  # importlib then finds no such package
    assert register_peers() == ()
