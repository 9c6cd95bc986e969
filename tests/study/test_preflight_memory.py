"""The memory estimate reads each method's extra from the registry (``MethodSpec.memory``)."""

from __future__ import annotations

import dataclasses

import pytest

from relgrad_core import get_method, register_method, unregister_method
from study.preflight import EVAL_ROWS, Shape, trial_floats

D, L, B, ROWS = 512, 2, 64, 1000


def _common(dim: int = D, depth: int = L, batch: int = B) -> int:
    """What every method holds: D×D layers' state, the data, the activations (see trial_floats)."""
    return 6 * depth * (dim * dim + dim) + ROWS * dim + 4 * depth * max(batch, EVAL_ROWS) * dim


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        ("relative", 0),
        ("mlp", 0),
        ("ordinary", 2 * L * D * D),  # an explicit inverse per layer
        ("autodiff", 2 * L * D * D),  # slogdet's LU factors
        ("lu", 2 * L * D * D),  # the two triangular factors
        ("jacobian", (L + 1) * B * D * D),  # every sample's Jacobian and its tangents
    ],
)
def test_builtin_estimates(method: str, extra: int) -> None:
    assert trial_floats(Shape(method, D, L, B, ROWS)) == _common() + extra


def test_a_registered_method_declares_its_own_extra() -> None:
    def memory(dim: int, depth: int, batch: int) -> float:
        return 7 * dim * batch

    register_method(dataclasses.replace(get_method("mlp"), name="hungry", memory=memory))
    try:
        assert trial_floats(Shape("hungry", D, L, B, ROWS)) == _common() + 7 * D * B
    finally:
        unregister_method("hungry")


def test_peer_estimates_say_what_the_peer_holds() -> None:
    pytest.importorskip("zuko")
    # zuko's MAF: a MADE D → D → D → 2D per transform, several times a D×D layer's state
    maf = trial_floats(Shape("zuko_maf", D, L, B, ROWS)) - _common()
    assert maf > 6 * L * 4 * D * D
    # zuko's LU layers keep the assembled triangles and their product per layer
    assert trial_floats(Shape("zuko_lu", D, L, B, ROWS)) - _common() == 3 * L * D * D
