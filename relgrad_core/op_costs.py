"""What each aten operation costs in FLOPs, and which operations cost nothing worth counting.

torch's :class:`~torch.utils.flop_counter.FlopCounterMode` counts matrix products (``mm``, ``addmm``,
``bmm``, ``baddbmm``, convolutions, attention) at ``2·m·k·n`` per product: a multiply and an add per term.
It leaves out every linear-algebra kernel, so an explicit inverse or a log-determinant would be invisible.
:data:`LINALG_FLOPS` adds them with the standard dense counts (Golub & Van Loan, *Matrix Computations*,
4th ed., §3.2–3.4 and §4.2; leading terms, a multiply and an add counted as two FLOPs), for a batch of
``b`` matrices ``A`` of size n×n and right-hand sides of ``k`` columns:

===================================================  ===================  =================================
operation (aten)                                     FLOPs                why
===================================================  ===================  =================================
``linalg_lu_factor_ex``, ``linalg_lu``,              b·(R·r² − r³/3)      LU of an m×n matrix, r = min,
``_linalg_slogdet``, ``_linalg_det``                 (square: ⅔·n³)       R = max; det/slogdet are its LU
``linalg_inv_ex``                                    b·2·n³               LU ⅔n³ + inverse from the
                                                                          factors ⁴⁄₃n³
``_linalg_solve_ex``                                 b·(⅔·n³ + 2·n²·k)    LU, then two triangular solves
``linalg_lu_solve``, ``lu_solve``,                   b·2·n²·k             two triangular solves
``cholesky_solve``
``linalg_solve_triangular``, ``triangular_solve``    b·n²·k               one triangular solve
``linalg_cholesky_ex``, ``cholesky``                 b·n³/3               Cholesky
``cholesky_inverse``                                 b·⅔·n³               inverse from the factor
``mv``, ``addmv``, ``addr``                          2·m·n                matrix-vector, rank-one update
``dot``, ``vdot``                                    2·n
``addbmm``                                           2·b·m·k·n            a sum of batched products
===================================================  ===================  =================================

Deliberately *not* counted: eigen- and singular-value decompositions (iterative: no exact count) and QR
(its count depends on whether Q is formed). They are reported as uncounted work, like any operation that is
neither in a FLOP table nor one of :data:`ELEMENTWISE_OPS` / :data:`VIEW_OPS`.

:data:`ELEMENTWISE_OPS` are operations whose work is proportional to the size of their tensors (pointwise
arithmetic, reductions, copies, fills, gathers, the fused optimizer kernels): their cost is bounded by the
bytes they move, which the counter does count. :data:`VIEW_OPS` move no data at all (views, aliases,
bookkeeping).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

aten = torch.ops.aten
Shape = Sequence[int]


def _batch(*shapes: Shape) -> int:
    """Number of matrices in a (broadcast) batch: the product of the leading dimensions."""
    return math.prod(torch.broadcast_shapes(*(torch.Size(s[:-2]) for s in shapes)))


def _lu(a: Shape) -> float:
    r, big = min(a[-2], a[-1]), max(a[-2], a[-1])
    return _batch(a) * (big * r * r - r**3 / 3)


def _columns(a: Shape, b: Shape, left: bool = True) -> int:
    """Right-hand sides of a solve with the n×n matrix ``a``: ``b``'s columns (rows when ``left=False``);
    a vector counts one."""
    if len(b) == len(a) - 1:
        return 1
    return b[-1] if left else b[-2]


def lu_factor_flops(a: Shape, *args: Any, out_shape: Any = None, **kwargs: Any) -> float:
    """LU of an m×n matrix: ``R·r² − r³/3`` (⅔·n³ square), per matrix of the batch."""
    return _lu(a)


def inverse_flops(a: Shape, *args: Any, out_shape: Any = None, **kwargs: Any) -> float:
    """Explicit inverse: LU ⅔·n³ plus the inverse from the factors ⁴⁄₃·n³."""
    return _batch(a) * 2.0 * a[-1] ** 3


def solve_flops(a: Shape, b: Shape, *args: Any, left: bool = True, out_shape: Any = None, **kw: Any) -> float:
    """``linalg.solve``: LU of A, then two triangular solves per right-hand side."""
    n = a[-1]
    return _batch(a, b if len(b) == len(a) else a) * (2.0 / 3.0 * n**3 + 2.0 * n * n * _columns(a, b, left))


def lu_solve_flops(
    lu: Shape, pivots: Shape, b: Shape, *args: Any, left: bool = True, out_shape: Any = None, **kw: Any
) -> float:
    """Solve from LU factors: a forward and a back substitution, ``2·n²·k``."""
    return _batch(lu, b) * 2.0 * lu[-1] ** 2 * _columns(lu, b, left)


def legacy_lu_solve_flops(
    b: Shape, lu: Shape, pivots: Shape, *args: Any, out_shape: Any = None, **kw: Any
) -> float:
    return lu_solve_flops(lu, pivots, b)


def solve_triangular_flops(
    a: Shape, b: Shape, *args: Any, left: bool = True, out_shape: Any = None, **kw: Any
) -> float:
    """One triangular solve: ``n²·k``."""
    return _batch(a, b) * a[-1] ** 2 * _columns(a, b, left)


def triangular_solve_flops(b: Shape, a: Shape, *args: Any, out_shape: Any = None, **kw: Any) -> float:
    return solve_triangular_flops(a, b)


def cholesky_flops(a: Shape, *args: Any, out_shape: Any = None, **kwargs: Any) -> float:
    """Cholesky: ``n³/3``."""
    return _batch(a) * a[-1] ** 3 / 3.0


def cholesky_solve_flops(b: Shape, factor: Shape, *args: Any, out_shape: Any = None, **kw: Any) -> float:
    return _batch(factor, b) * 2.0 * factor[-1] ** 2 * _columns(factor, b)


def cholesky_inverse_flops(factor: Shape, *args: Any, out_shape: Any = None, **kwargs: Any) -> float:
    """Inverse from the Cholesky factor: ``⅔·n³`` (triangular inverse ⅓ + product ⅓)."""
    return _batch(factor) * 2.0 / 3.0 * factor[-1] ** 3


def mv_flops(mat: Shape, vec: Shape, *args: Any, out_shape: Any = None, **kwargs: Any) -> float:
    return 2.0 * mat[-2] * mat[-1]


def addmv_flops(bias: Shape, mat: Shape, vec: Shape, *args: Any, out_shape: Any = None, **kw: Any) -> float:
    return mv_flops(mat, vec)


def addr_flops(bias: Shape, u: Shape, v: Shape, *args: Any, out_shape: Any = None, **kw: Any) -> float:
    return 2.0 * u[-1] * v[-1]


def dot_flops(a: Shape, b: Shape, *args: Any, out_shape: Any = None, **kwargs: Any) -> float:
    return 2.0 * a[-1]


def addbmm_flops(bias: Shape, a: Shape, b: Shape, *args: Any, out_shape: Any = None, **kw: Any) -> float:
    return 2.0 * a[0] * a[1] * a[2] * b[2]


#: FLOP formulas for what torch's FlopCounterMode does not count (``custom_mapping``; shapes in, FLOPs out).
LINALG_FLOPS: dict[Any, Callable[..., float]] = {
    aten.linalg_lu_factor_ex: lu_factor_flops,
    aten.linalg_lu: lu_factor_flops,
    aten._linalg_slogdet: lu_factor_flops,
    aten._linalg_det: lu_factor_flops,
    aten.linalg_inv_ex: inverse_flops,
    aten._linalg_solve_ex: solve_flops,
    aten.linalg_lu_solve: lu_solve_flops,
    aten.lu_solve: legacy_lu_solve_flops,
    aten.linalg_solve_triangular: solve_triangular_flops,
    aten.triangular_solve: triangular_solve_flops,
    aten.linalg_cholesky_ex: cholesky_flops,
    aten.cholesky: cholesky_flops,
    aten.cholesky_solve: cholesky_solve_flops,
    aten.cholesky_inverse: cholesky_inverse_flops,
}
#: Matrix-vector work torch's counter leaves out (O(m·n): never cubic, but not elementwise either).
VECTOR_FLOPS: dict[Any, Callable[..., float]] = {
    aten.mv: mv_flops,
    aten.addmv: addmv_flops,
    aten.addr: addr_flops,
    aten.dot: dot_flops,
    aten.vdot: dot_flops,
    aten.addbmm: addbmm_flops,
}

_POINTWISE = (
    "abs add addcdiv addcmul atan2 bitwise_and bitwise_not bitwise_or ceil clamp clamp_max clamp_min cos "
    "cosh div eq erf exp exp2 expm1 floor fmod frac ge gelu gelu_backward gt hardtanh isfinite isinf isnan "
    "le leaky_relu leaky_relu_backward lerp log log10 log1p log2 log_sigmoid_forward log_sigmoid_backward "
    "logical_and logical_not logical_or logit lt masked_fill maximum minimum mul ne neg pow reciprocal relu "
    "remainder round rsqrt rsub sgn sigmoid sigmoid_backward sign signbit silu silu_backward sin sinh "
    "softplus softplus_backward sqrt _softmax _log_softmax _softmax_backward_data _log_softmax_backward_data "
    "elu elu_backward copysign nan_to_num hypot lgamma digamma erfinv "
    "square sub tan tanh tanh_backward threshold_backward trunc where xlogy"
)
_REDUCTIONS = (
    "all amax amin any argmax argmin cumsum logsumexp max mean min norm linalg_vector_norm prod std sum var"
)
_MEMORY = (
    "_efficientzerotensor _to_copy cat clone contiguous copy copy_ diag_embed empty empty_like empty_strided "
    "eye fill fill_ full full_like gather index index_add index_copy index_put index_put_ index_select "
    "masked_scatter new_empty new_empty_strided new_full new_ones new_zeros ones ones_like repeat scatter "
    "scatter_add stack to tril triu where zero_ zeros zeros_like arange bernoulli normal rand randn uniform "
    # the backward of a view writes the gradient into a zero tensor of the input's shape: data movement
    "as_strided_scatter diagonal_backward diagonal_scatter select_backward select_scatter slice_backward "
    "slice_scatter unfold_backward masked_select"
)
_OPTIMIZER = "_fused_adam _fused_adamw _fused_sgd"
_PRIMS = "prims.add prims.mul prims.sub prims.div prims.neg prims.convert_element_type prims.broadcast_in_dim"


def _names(*groups: str, namespace: str = "aten") -> frozenset[str]:
    names = " ".join(groups).split()
    return frozenset(n if "." in n else f"{namespace}.{n}" for n in names)


#: Operations whose work is proportional to the size of their tensors (their bytes bound their cost).
#: In-place variants (``add_``) and ``_foreach_*`` lists are recognised from their base name.
ELEMENTWISE_OPS: frozenset[str] = _names(_POINTWISE, _REDUCTIONS, _MEMORY, _OPTIMIZER, _PRIMS)
#: Operations that move no data: views, aliases and bookkeeping.
VIEW_OPS: frozenset[str] = _names(
    "_linalg_check_errors _reshape_alias _unsafe_view alias as_strided detach diagonal expand lift_fresh "
    "movedim narrow permute reshape resolve_conj resolve_neg select slice split split_with_sizes squeeze t "
    "transpose unbind unflatten unsqueeze view view_as _conj _neg_view set_ resize_ lift_fresh_copy"
)


def op_name(packet: Any) -> str:
    """``aten.mm`` for the overload packet ``torch.ops.aten.mm`` (its name in tables and tags)."""
    return str(packet)


def base_name(name: str) -> str:
    """The operation an in-place or ``_foreach_`` variant belongs to (``aten._foreach_add_``: ``add``)."""
    namespace, _, op = name.rpartition(".")
    if op.startswith("_foreach_"):
        op = op[len("_foreach_") :]
    if op.endswith("_") and not op.endswith("__") and op.rstrip("_"):
        stripped = op[:-1]
        if f"{namespace}.{stripped}" in ELEMENTWISE_OPS | VIEW_OPS:
            op = stripped
    return f"{namespace}.{op}"


def op_kind(name: str, counted: bool, linalg: bool) -> str:
    """``product`` (counted products, matrix-vector work), ``linalg`` (counted decompositions and solves),
    ``elementwise``, ``view``, or ``uncounted`` (anything else: work the counter cannot see)."""
    if counted:
        return "linalg" if linalg else "product"
    base = base_name(name)
    if name.startswith("profiler.") or base in VIEW_OPS:
        return "view"
    if base in ELEMENTWISE_OPS:
        return "elementwise"
    return "uncounted"
