"""Counted work of one training step: FLOPs and bytes per operation, exact and without a clock.

:func:`count_step` runs one step of a method (its direction, then the optimizer, as
:class:`~relgrad_core.timing.StepRunner` runs it when timing) under two dispatch modes:

- torch's :class:`~torch.utils.flop_counter.FlopCounterMode`, with the linear algebra it leaves out
  registered (:data:`relgrad_core.op_costs.LINALG_FLOPS`: LU ⅔·n³, inverse 2·n³, triangular solve n²·k, …),
  gives the FLOPs per operation;
- a ledger mode beside it records every operation actually run: its **bytes** (the sizes of its tensor
  inputs and outputs: an upper bound on its memory traffic; views move none) and its kind. An operation that
  is neither counted nor elementwise nor a view is **uncounted work** (:attr:`StepCount.uncounted`): a method
  calling ``torch.linalg.eigh`` cannot hide it.

**Cubic work** (:attr:`StepCount.flops_cubic`): the part of the count that grows as D³ at a fixed batch size —
decompositions, inverses and solves of D×D matrices with D right-hand sides, and products whose three
extents all grow with D (``W̃ᵀW̃`` formed explicitly, the jacobian baseline's (B·D)×D×D tangent products);
never a B×D×D product. Which extents grow with D is *observed*, not guessed from their values (at B = D a
value cannot tell): the same step is run once more, at the same batch size, on a flow of a small probe
dimension (:data:`PROBE_DIMS`: a few milliseconds), and an extent of a counted call that differs between the
two runs grows with D. Each call's FLOPs are then evaluated with those extents scaled by t = 0, 1, 2, 3; its
cubic part is the t³ coefficient, ``Δ³f(0)/6``. When the two runs do not call the same counted operations in
the same order (a method whose control flow depends on D), extents are classified by value instead — a
multiple of D or D + 1 that is not the batch size — and :attr:`StepCount.cubic_rule` says so.

Elementwise work (activations, the optimizer) is O(B·D + D²): not counted in FLOPs, it shows in the bytes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_unflatten
from torch.utils.flop_counter import FlopCounterMode

from relgrad_core.checks import check_nonnegative_int
from relgrad_core.flow import Flow
from relgrad_core.methods import make_flow
from relgrad_core.op_costs import LINALG_FLOPS, VECTOR_FLOPS, op_kind, op_name
from relgrad_core.timing import StepRunner

CUBIC_RULE_PROBE = "extents that grow with D observed on a step at a probe dimension"
#: The probe's dimension: the first of these that differs from D (small and even: coupling layers halve D).
PROBE_DIMS: tuple[int, int] = (8, 12)
KINDS: tuple[str, ...] = ("product", "linalg", "elementwise", "view", "uncounted")


class UncountedWorkWarning(UserWarning):
    """A step ran operations whose work the counter cannot count (see :attr:`StepCount.uncounted`)."""


@dataclass(frozen=True)
class OpCount:
    """One operation's totals over a step."""

    kind: str
    calls: int
    flops: float
    flops_cubic: float
    bytes: int


@dataclass(frozen=True)
class StepCount:
    """Counted work of one step of ``method`` at ``dim``, ``batch``, ``depth``.

    ``flops`` (products and linear algebra), ``flops_cubic`` (its part that grows as D³, see module
    docstring), ``bytes`` (tensor inputs + outputs of every data-moving operation), ``by_op`` (per aten
    operation, e.g. ``aten.mm``), ``uncounted`` (operations neither counted nor elementwise nor views).
    """

    method: str
    dim: int
    batch: int
    depth: int
    flops: float
    flops_cubic: float
    bytes: int
    by_op: dict[str, OpCount] = field(repr=False)
    uncounted: tuple[str, ...] = ()
    cubic_rule: str = CUBIC_RULE_PROBE

    @property
    def intensity(self) -> float:
        """FLOPs per byte moved (a lower bound: bytes are an upper bound on the traffic)."""
        return self.flops / self.bytes if self.bytes else math.inf

    def by_kind(self) -> dict[str, OpCount]:
        """Totals per operation kind (:data:`KINDS`)."""
        out: dict[str, OpCount] = {}
        for op in self.by_op.values():
            old = out.get(op.kind, OpCount(op.kind, 0, 0.0, 0.0, 0))
            out[op.kind] = OpCount(
                op.kind,
                old.calls + op.calls,
                old.flops + op.flops,
                old.flops_cubic + op.flops_cubic,
                old.bytes + op.bytes,
            )
        return out


@dataclass
class _Call:
    name: str
    kind: str
    bytes: int
    formula: Callable[..., float] | None = None
    leaves: list[Any] = field(default_factory=list)  # args, kwargs, output flattened; tensors as shapes
    spec: Any = None


def _tensor_bytes(leaves: list[Any]) -> int:
    return sum(t.numel() * t.element_size() for t in leaves if isinstance(t, torch.Tensor))


class _Ledger(TorchDispatchMode):
    """Records every operation run (after FlopCounterMode's decompositions, when it is inside)."""

    def __init__(self, registry: dict[Any, Callable[..., float]]) -> None:
        super().__init__()
        self.registry = registry
        self.calls: list[_Call] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func.overloadpacket
        name = op_name(packet)
        formula = self.registry.get(packet)
        kind = op_kind(name, formula is not None, packet in LINALG_FLOPS)
        leaves, spec = tree_flatten((args, kwargs, out))
        call = _Call(name, kind, 0 if kind == "view" else _tensor_bytes(leaves))
        if formula is not None:
            call.formula, call.spec = formula, spec
            call.leaves = [tuple(x.shape) if isinstance(x, torch.Tensor) else x for x in leaves]
        self.calls.append(call)
        return out


def _evaluate(call: _Call, linked: list[list[bool]], scale: int) -> float:
    """The call's FLOPs with every extent that grows with D multiplied by ``scale``."""
    leaves = list(call.leaves)
    shapes = [i for i, leaf in enumerate(leaves) if isinstance(leaf, tuple)]
    for index, flags in zip(shapes, linked, strict=True):
        leaves[index] = tuple(
            e * scale if grows else e for e, grows in zip(leaves[index], flags, strict=True)
        )
    args, kwargs, out = tree_unflatten(leaves, call.spec)
    return float(call.formula(*args, **kwargs, out_val=out))  # type: ignore[misc]


def _cubic_part(call: _Call, linked: list[list[bool]]) -> float:
    """The t³ coefficient of the call's FLOPs with its D-extents scaled by t: ``Δ³f(0) / 6``."""
    try:
        f0, f1, f2, f3 = (_evaluate(call, linked, t) for t in range(4))
    except (TypeError, ValueError, IndexError, RuntimeError):
        return 0.0  # a formula that needs the tensors themselves (torch's attention kernels): not a D×D solve
    part = (f3 - 3.0 * f2 + 3.0 * f1 - f0) / 6.0
    return part if abs(part) > 1e-9 * max(abs(f1), 1.0) else 0.0


def _shapes(call: _Call) -> list[tuple[int, ...]]:
    return [leaf for leaf in call.leaves if isinstance(leaf, tuple)]


def _linked_by_probe(call: _Call, probe: _Call) -> list[list[bool]]:
    return [
        [a != b for a, b in zip(s, p, strict=True)] if len(s) == len(p) else [True] * len(s)
        for s, p in zip(_shapes(call), _shapes(probe), strict=True)
    ]


def _linked_by_value(call: _Call, dim: int, batch: int) -> list[list[bool]]:
    return [[e != batch and e > 1 and (e % dim == 0 or e % (dim + 1) == 0) for e in s] for s in _shapes(call)]


def _run_counted(step: Callable[[], None], registry_mode: FlopCounterMode) -> tuple[_Ledger, FlopCounterMode]:
    ledger = _Ledger(registry_mode.flop_registry)
    # the ledger outside: it sees what the FLOP counter finally runs (after its decompositions)
    with ledger, registry_mode:
        step()
    return ledger, registry_mode


def _flop_counter() -> FlopCounterMode:
    return FlopCounterMode(display=False, custom_mapping={**LINALG_FLOPS, **VECTOR_FLOPS})


def _probe_flow(flow: Flow, method: str, dim: int) -> Flow:
    """A flow like ``flow`` at dimension ``dim`` (identity weights: only the shapes matter)."""
    kwargs = {"alpha": flow.alpha, "bias": flow.has_bias, "base": flow.base_name}
    where = {"device": flow.device, "dtype": flow.dtype}
    try:
        return type(flow)(dim, flow.depth, **kwargs, **where, init="identity")
    except TypeError:  # a flow class with another constructor: the registry builds it
        return make_flow(method, dim, flow.depth, **kwargs, **where)


def _probe_calls(flow: Flow, x: torch.Tensor, method: str, optimizer: str, warmup: int) -> list[_Call]:
    """The counted calls of the same step at the probe dimension (same batch, same warm-up)."""
    dim = next(d for d in PROBE_DIMS if d != flow.dim)
    probe = _probe_flow(flow, method, dim)
    # contiguous like a batch of data: vmap's batching rules pick kernels by the layout of their inputs
    columns = torch.cat([x] * -(-dim // x.shape[1]), dim=1)[:, :dim].contiguous()
    runner = StepRunner(probe, columns, method, optimizer=optimizer)
    for _ in range(warmup):
        runner()
    ledger, _ = _run_counted(runner, _flop_counter())
    return [c for c in ledger.calls if c.formula is not None]


def count_step(
    flow: Flow,
    x: torch.Tensor,
    method: str,
    *,
    optimizer: str = "adam",
    warmup: int = 1,
    probe: bool = True,
    warn: bool = True,
) -> StepCount:
    """Count one training step of ``method`` on batch ``x`` (see module docstring); no timing.

    ``warmup`` untracked steps first, so that the counted one is a steady-state step (the optimizer's state
    exists, as in a timed step). ``probe=False`` skips the probe step and classifies cubic extents by
    value. The flow's weights are restored afterwards, as :func:`~relgrad_core.time_step` does.
    ``UncountedWorkWarning`` names any uncounted operation (``warn=False``: only on the result).
    """
    check_nonnegative_int("warmup", warmup)
    # a private CPU snapshot, as time_step keeps: no second copy of the weights on the device
    saved = {k: v.detach().to("cpu", copy=True) for k, v in flow.state_dict().items()}
    try:
        runner = StepRunner(flow, x, method, optimizer=optimizer)
        for _ in range(warmup):
            runner()
        ledger, counter = _run_counted(runner, _flop_counter())
    finally:
        flow.load_state_dict(saved)
    batch, dim = int(runner.x.shape[0]), int(flow.dim)
    counted = [c for c in ledger.calls if c.formula is not None]
    rule = CUBIC_RULE_PROBE
    links: list[list[list[bool]]] | None = None
    if probe:
        try:
            other = _probe_calls(flow, x, method, optimizer, warmup)
        except (RuntimeError, ValueError, TypeError) as err:
            rule = f"extents classified by value (the probe step failed: {type(err).__name__}: {err})"
        else:
            if [c.name for c in other] == [c.name for c in counted]:
                links = [_linked_by_probe(c, p) for c, p in zip(counted, other, strict=True)]
            else:
                rule = "extents classified by value (the probe step ran other counted operations)"
    else:
        rule = "extents classified by value (no probe step)"
    if links is None:
        links = [_linked_by_value(c, dim, batch) for c in counted]
    cubic: dict[str, float] = {}
    for call, linked in zip(counted, links, strict=True):
        cubic[call.name] = cubic.get(call.name, 0.0) + _cubic_part(call, linked)
    flops = {op_name(k): float(v) for k, v in counter.get_flop_counts().get("Global", {}).items()}
    by_op: dict[str, OpCount] = {}
    for call in ledger.calls:
        old = by_op.get(call.name, OpCount(call.kind, 0, 0.0, 0.0, 0))
        by_op[call.name] = OpCount(call.kind, old.calls + 1, 0.0, 0.0, old.bytes + call.bytes)
    for name, value in flops.items():
        op = by_op.get(name, OpCount("product", 0, 0.0, 0.0, 0))
        by_op[name] = OpCount(op.kind, op.calls, value, cubic.get(name, 0.0), op.bytes)
    uncounted = tuple(sorted(n for n, op in by_op.items() if op.kind == "uncounted"))
    if uncounted and warn:
        warnings.warn(
            f"{method}: the step runs operations whose work is not counted: {', '.join(uncounted)}",
            UncountedWorkWarning,
            stacklevel=2,
        )
    return StepCount(
        method=method,
        dim=dim,
        batch=batch,
        depth=int(flow.depth),
        flops=sum(op.flops for op in by_op.values()),
        flops_cubic=sum(op.flops_cubic for op in by_op.values()),
        bytes=sum(op.bytes for op in by_op.values()),
        by_op=by_op,
        uncounted=uncounted,
        cubic_rule=rule,
    )
