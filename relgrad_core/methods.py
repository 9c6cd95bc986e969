"""The method registry: every gradient a flow can be trained with, in one place.

All methods optimise the mean NLL of a batch, ``−mean_n log p(x_n)``; they differ in the direction they put
into ``.grad``, in the flow class they train and in their cost per step (B = batch, D = dimension, L = depth):

==========  =============  ==================================================================  ===============
method      flow           direction                                                           cost
==========  =============  ==================================================================  ===============
relative    DenseFlow      Euclidean gradient · W̃ᵀW̃ (see :mod:`relgrad_core.relative`)         O(L·B·D²)
ordinary    DenseFlow      autograd on the data term, log-det part added as −W⁻ᵀ (explicit)     O(L·(B·D²+D³))
autodiff    DenseFlow      autograd through ``torch.linalg.slogdet(W)``                        O(L·(B·D²+D³))
jacobian    DenseFlow      autograd through log|det| of each sample's full Jacobian of g       O(L·B·D³)
lu          LUFlow         Euclidean gradient of an :class:`~relgrad_core.lu_flow.LUFlow`       O(L·B·D²)
mlp         DenseFlow      autograd on the data term only (no log-det): the cost floor         O(L·B·D²)
==========  =============  ==================================================================  ===============

Other libraries' flows (zuko's and nflows': ``zuko_lu``, ``nflows_lu``, ``zuko_maf``) are registered beside
these by :mod:`relgrad_core.peers` where their packages are installed.

**FLOP model** (matrix products only; elementwise work, O(B·D) and O(D²), is not counted). A B×D by D×D
product costs ``2·B·D²`` FLOPs, so in units of B·D² a product counts 2. Per step:

* mlp: forward 2 per layer, weight gradient 2 per layer, input gradient 2 on every layer but the first
  (the data need none): ``6L − 2``.
* relative: forward 2, ``yW`` and ``δᵀ(yW)`` 4 per layer, input gradient 2 on every layer but the first;
  with a Gaussian base the last layer's input gradient is ``g·(yW)/B``, a by-product, so
  ``6L + 2·max(L−2, 0)`` (Gaussian) or ``8L − 2`` (other bases, L ≥ 2). Ratio to the MLP: 12/10 at L = 2,
  → 4/3 for deep flows.
* lu: the two triangular factors are applied as two dense products: forward 4, backward 6 per layer (the
  gradients of both factors and the one between them), input gradient 2 on every layer but the first:
  ``12L − 2``.
* ordinary, autodiff: the MLP's ``6L − 2`` (autograd on the same data term), plus
  ordinary ``2·D³`` per layer (``inv``: LU ⅔D³ + inversion from the factors ⁴⁄₃D³);
  autodiff ``⁸⁄₃·D³`` per layer (``slogdet``'s LU ⅔D³ forward, ``W⁻ᵀ`` from the factors by two triangular
  solves, 2D³, backward).
* jacobian: ``(6L − 2 + ⁸⁄₃)·B·D³``: forward-mode Jacobians carry D tangents per sample, so the products of
  the data-term gradient happen D times over ((6L − 2)·B·D³), plus B factorisations with their backward
  (⁸⁄₃·B·D³); and ``(16L − 10)·B·D²`` (8 at L = 1): the data term's products once for the loss and once as
  ``jacfwd``'s primal pass, with the backward through both.

**Which is authoritative**: the count. :func:`relgrad_core.counting.count_step` counts what a step actually
dispatches (torch's FLOP counter plus the linear algebra it leaves out); this model is its closed form, and
``tests/core/test_counting.py`` checks the two agree term by term for every built-in at depths 1–3 and both
kinds of base (O(B·D) matrix-vector work, e.g. relative's bias directions, is counted there but not here).

:func:`flop_ratio` compares the O(B·D²) parts only (the part every method shares); the D³ and B·D³ terms are
in :func:`matrix_flops`. A method may have no FLOP model (``flops=None``: other libraries' flows, whose work
is counted, not modelled); both functions give NaN for it.

**Memory** beyond what every method holds (weights, gradients, optimizer state and activations of D×D
layers; ``study.preflight``): ``memory(dim, depth, batch)`` extra floats, e.g. an inverse or LU factors per
layer (``2·L·D²``) for ordinary/autodiff/lu, every sample's Jacobian and its tangents (``(L + 1)·B·D²``)
for jacobian.

Adding a method: build a :class:`MethodSpec` and :func:`register_method` it; :func:`backward`,
:func:`make_flow`, :func:`~relgrad_core.time_step` and :func:`~relgrad_core.fit` take it up. A method
known by name whose package is not installed (:mod:`relgrad_core.peers`) is noted with
:func:`note_unavailable`, so that asking for it says what to install.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from relgrad_core.checks import check_positive_int
from relgrad_core.flow import DenseFlow, Flow
from relgrad_core.gradients import (
    data_term_direction,
    exact_nll_direction,
    jacobian_direction,
    ordinary_direction,
    relative_direction,
)
from relgrad_core.lu_flow import LUFlow

#: ``direction(flow, x)``: fill every ``p.grad`` (``None`` on entry), return the detached data-term NLL.
Direction = Callable[[Flow, torch.Tensor], torch.Tensor]


def _no_term(depth: int) -> float:
    return 0.0


def _no_memory(dim: int, depth: int, batch: int) -> float:
    return 0.0


#: ``memory(dim, depth, batch)``: floats a trial of the method holds beyond D×D layers' common state.
MemoryModel = Callable[[int, int, int], float]


@dataclass(frozen=True)
class FlopModel:
    """Matrix FLOPs of one step: ``bd2(L, gaussian)·B·D² + d3(L)·D³ + bd3(L)·B·D³``."""

    bd2: Callable[[int, bool], float]
    d3: Callable[[int], float] = _no_term
    bd3: Callable[[int], float] = _no_term

    def __call__(self, batch: int, dim: int, depth: int, gaussian_base: bool = True) -> float:
        return (
            self.bd2(depth, gaussian_base) * batch * dim**2
            + self.d3(depth) * dim**3
            + self.bd3(depth) * batch * dim**3
        )


@dataclass(frozen=True)
class MethodSpec:
    """One gradient method: its name, the flow class it trains, its display order, its direction and cost.

    ``order`` sorts :func:`method_names` (the first name is the reference every speedup is measured
    against); ``cost`` is the big-O summary shown to users; ``flops`` the matrix-FLOP model (``None``: no
    analytic model, the work is only counted); ``memory`` the extra floats of a trial (module docstring);
    ``peer`` the library whose flow the method trains (``""`` for relgrad's own).
    """

    name: str
    flow_class: type[Flow]
    direction: Direction
    flops: FlopModel | None = None
    order: int = 100
    cost: str = ""
    summary: str = ""
    memory: MemoryModel = _no_memory
    peer: str = ""

    def check_flow(self, flow: object) -> None:
        """``ValueError`` unless ``flow`` is an instance of :attr:`flow_class`."""
        if not isinstance(flow, self.flow_class):
            raise ValueError(
                f"method {self.name!r} trains a flow of class {self.flow_class.__name__}, got "
                f"{type(flow).__name__}; build one with make_flow({self.name!r}, ...)"
            )

    def apply(self, flow: Flow, x: torch.Tensor) -> torch.Tensor:
        """Replace every ``p.grad`` by this method's direction on the batch ``x``; the data-term NLL.

        Unchecked: ``flow`` must suit the method and ``x`` come from :meth:`Flow.check_input` (what
        :func:`backward` does on every call, and ``fit``/``time_step`` once before their loops).
        """
        for p in flow.parameters():
            p.grad = None
        return self.direction(flow, x)


_REGISTRY: dict[str, MethodSpec] = {}
#: Names known to the project whose package is missing here -> what to install (one line).
_UNAVAILABLE: dict[str, str] = {}


def register_method(spec: MethodSpec, *, replace: bool = False) -> MethodSpec:
    """Add ``spec`` to the registry (``replace=True`` to redefine a name); returns it."""
    if not isinstance(spec, MethodSpec):
        raise TypeError(f"expected a MethodSpec, got {type(spec).__name__}")
    name = spec.name
    if not isinstance(name, str) or not name or any(c.isspace() or c in ",=" for c in name):
        raise ValueError(f"method name must be a non-empty string without spaces, ',' or '=', got {name!r}")
    if not (isinstance(spec.flow_class, type) and issubclass(spec.flow_class, Flow)):
        raise ValueError(f"method {name!r}: flow_class must be a Flow subclass, got {spec.flow_class!r}")
    if not callable(spec.direction):
        raise ValueError(f"method {name!r}: direction must be callable")
    if spec.flops is not None and not isinstance(spec.flops, FlopModel):
        raise ValueError(
            f"method {name!r}: flops must be a FlopModel or None, got {type(spec.flops).__name__}"
        )
    if not callable(spec.memory):
        raise ValueError(f"method {name!r}: memory must be callable (dim, depth, batch) -> floats")
    if isinstance(spec.order, bool) or not isinstance(spec.order, int):
        raise ValueError(f"method {name!r}: order must be an integer, got {spec.order!r}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"method {name!r} is already registered (pass replace=True to redefine it)")
    _REGISTRY[name] = spec
    _UNAVAILABLE.pop(name, None)
    return spec


def note_unavailable(name: str, reason: str) -> None:
    """Record that method ``name`` exists but cannot run here (``reason``: what to install, one line).

    :func:`get_method` then answers with ``reason`` instead of "unknown method"; registering the name
    later clears the note.
    """
    if name not in _REGISTRY:
        _UNAVAILABLE[name] = reason


def unavailable_methods() -> dict[str, str]:
    """Methods known by name but not installed here -> what to install."""
    return dict(_UNAVAILABLE)


def unregister_method(name: str) -> None:
    """Remove a method (``KeyError``-free: an unknown name raises ``ValueError`` like :func:`get_method`)."""
    get_method(name)
    del _REGISTRY[name]


def method_names() -> tuple[str, ...]:
    """Registered method names in display order (live: includes methods registered later)."""
    return tuple(s.name for s in sorted(_REGISTRY.values(), key=lambda s: (s.order, s.name)))


def get_method(name: str) -> MethodSpec:
    """The :class:`MethodSpec` called ``name``; ``ValueError`` listing the known ones otherwise."""
    spec = _REGISTRY.get(name) if isinstance(name, str) else None
    if spec is None and name in _UNAVAILABLE:
        raise ValueError(f"method {name!r} is not installed: {_UNAVAILABLE[name]}")
    if spec is None:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(method_names())}")
    return spec


def check_method(flow: Flow, method: str) -> MethodSpec:
    """The spec of ``method`` after checking that it can train ``flow`` (``ValueError`` otherwise)."""
    spec = get_method(method)
    spec.check_flow(flow)
    return spec


def backward(flow: Flow, x: torch.Tensor, method: str) -> torch.Tensor:
    """Fill ``p.grad`` of every parameter of ``flow`` with ``method``'s direction for the mean NLL of ``x``.

    Any ``torch.optim`` optimizer can then ``step()``. Existing gradients are replaced, not accumulated.
    ``x`` is checked (:meth:`Flow.check_input`: O(B·D), one host sync) and cast to the flow's dtype.

    Returns:
        The mean *data-term* NLL of the batch, ``−mean_n[log p_1(z_n) + Σ log σ'(y_n)]`` (detached);
        the log-det term is left out because the relative method never computes it.
    """
    spec = check_method(flow, method)
    return spec.apply(flow, flow.check_input(x))


def make_flow(
    method: str,
    dim: int,
    depth: int,
    *,
    alpha: float = 0.3,
    bias: bool = True,
    base: str = "gaussian",
    device: str | torch.device | None = "auto",
    dtype: torch.dtype = torch.float32,
    seed: int | None = 0,
) -> Flow:
    """The flow that ``method`` trains (its spec's ``flow_class``), seeded (reproducible) by default."""
    cls = get_method(method).flow_class
    return cls(dim, depth, alpha=alpha, bias=bias, base=base, device=device, dtype=dtype, seed=seed)


def matrix_flops(method: str, batch: int, dim: int, depth: int, gaussian_base: bool = True) -> float:
    """Matrix FLOPs of one ``method`` step (the FLOP model of the module docstring); NaN for a method
    without a FLOP model."""
    for name, value in (("batch", batch), ("dim", dim), ("depth", depth)):
        check_positive_int(name, value)
    flops = get_method(method).flops
    return math.nan if flops is None else flops(batch, dim, depth, gaussian_base)


def flop_ratio(method: str, depth: int, gaussian_base: bool = True) -> float:
    """``method``'s O(B·D²) matrix FLOPs per step over the MLP's (1.2 for relative at depth 2, → 4/3);
    NaN for a method without a FLOP model."""
    check_positive_int("depth", depth)
    flops = get_method(method).flops
    if flops is None:
        return math.nan
    return flops.bd2(depth, gaussian_base) / _MLP_FLOPS.bd2(depth, gaussian_base)


def _factor_memory(dim: int, depth: int, batch: int) -> float:
    # an inverse (ordinary), slogdet's LU factors (autodiff) or the two triangular factors (lu) per layer
    return 2.0 * depth * dim * dim


def _jacobian_memory(dim: int, depth: int, batch: int) -> float:
    # every sample's D×D Jacobian, and the D tangents per sample that forward mode carries through a layer
    return (depth + 1.0) * batch * dim * dim


def _mlp_bd2(depth: int, gaussian_base: bool) -> float:
    return 6 * depth - 2


def _relative_bd2(depth: int, gaussian_base: bool) -> float:
    # the Gaussian head's input gradient is free; other bases pay it when there is a layer below (L ≥ 2)
    return 6 * depth + 2 * max(depth - 2, 0) + (0 if gaussian_base or depth == 1 else 2)


def _lu_bd2(depth: int, gaussian_base: bool) -> float:
    return 12 * depth - 2


def _jacobian_bd2(depth: int, gaussian_base: bool) -> float:
    return 8 if depth == 1 else 16 * depth - 10


_MLP_FLOPS = FlopModel(_mlp_bd2)
for _spec in (
    MethodSpec(
        "relative",
        DenseFlow,
        relative_direction,
        FlopModel(_relative_bd2),
        order=0,
        cost="O(B·D²)",
        summary="Euclidean gradient times the augmented metric W̃ᵀW̃ (Gresele et al. 2020)",
    ),
    MethodSpec(
        "ordinary",
        DenseFlow,
        ordinary_direction,
        FlopModel(_mlp_bd2, d3=lambda depth: 2.0 * depth),
        order=10,
        cost="O(B·D² + D³)",
        summary="Euclidean gradient with the log-det part −W⁻ᵀ formed by an explicit inverse",
        memory=_factor_memory,
    ),
    MethodSpec(
        "autodiff",
        DenseFlow,
        exact_nll_direction,
        FlopModel(_mlp_bd2, d3=lambda depth: 8.0 / 3.0 * depth),
        order=20,
        cost="O(B·D² + D³)",
        summary="autograd through torch.linalg.slogdet of each weight",
        memory=_factor_memory,
    ),
    MethodSpec(
        "jacobian",
        DenseFlow,
        jacobian_direction,
        FlopModel(_jacobian_bd2, bd3=lambda depth: 6.0 * depth - 2.0 + 8.0 / 3.0),
        order=30,
        cost="O(B·D³)",
        summary="autograd through log|det| of each sample's full Jacobian",
        memory=_jacobian_memory,
    ),
    MethodSpec(
        "lu",
        LUFlow,
        exact_nll_direction,
        FlopModel(_lu_bd2),
        order=40,
        cost="O(B·D²)",
        summary="Euclidean gradient of an LU-parameterised flow (W = P·L·U)",
        memory=_factor_memory,
    ),
    MethodSpec(
        "mlp",
        DenseFlow,
        data_term_direction,
        _MLP_FLOPS,
        order=50,
        cost="O(B·D²)",
        summary="data term only, no log-det: the cost floor",
    ),
):
    register_method(_spec)

#: The methods this module defines, in display order (others may be registered later, by users).
BUILTIN_METHODS: tuple[str, ...] = method_names()
