"""Counted work of a step: FLOPs and bytes against hand counts, the registry's FLOP model against the
count, the cubic part observed rather than guessed, work the counter cannot see surfaced, the order it
implies."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

from analysis.counted import fit_counted
from relgrad_core import (
    DenseFlow,
    FlopModel,
    MethodSpec,
    get_method,
    make_flow,
    matrix_flops,
    register_method,
    unregister_method,
)
from relgrad_core.counting import StepCount, UncountedWorkWarning, count_step
from relgrad_core.gradients import data_term_direction
from relgrad_core.methods import BUILTIN_METHODS
from relgrad_core.timing import matmul_peak

F64 = torch.float64


def _count(method: str, dim: int, batch: int, depth: int = 2, base: str = "gaussian", **kw) -> StepCount:
    flow = make_flow(method, dim, depth, base=base, device="cpu", dtype=F64)
    return count_step(
        flow, torch.randn(batch, dim, dtype=F64, generator=torch.Generator().manual_seed(0)), method, **kw
    )


def hand_count(method: str, b: int, d: int) -> tuple[float, float]:
    """(FLOPs, cubic FLOPs) of one depth-2 step with a Gaussian base, counted by hand:
    a B×D by D×D product is 2·B·D², an LU ⅔·D³, an inverse 2·D³, a solve from LU factors 2·D²·k."""
    forward, data_backward = 2 * (2 * b * d * d), 3 * (2 * b * d * d)  # 2 layers; no input gradient of x
    mlp = forward + data_backward
    if method == "mlp":
        return mlp, 0.0
    if method == "relative":
        # forward 2 products; backward per layer yW and δᵀ(yW); the last layer's input gradient is the
        # by-product g·(yW)/B of the Gaussian head, the first needs none; bias directions δᵀ(1 + y·b):
        # two matrix-vector products of 2·B·D per layer
        return forward + 2 * (2 * 2 * b * d * d) + 2 * (2 * 2 * b * d), 0.0
    if method == "ordinary":
        return mlp + 2 * 2 * d**3, 2 * 2 * d**3  # inv of each weight
    if method == "autodiff":
        cubic = 2 * (2 / 3 * d**3 + 2 * d**3)  # slogdet's LU, then W⁻ᵀ from the factors (2 solves, D rhs)
        return mlp + cubic, cubic
    if method == "lu":
        # each layer applies U then L (2 products forward), their gradients and the one between (6 backward),
        # the input gradient only on the upper layer
        return 2 * (2 * 2 * b * d * d) + 2 * (3 * 2 * b * d * d) + 2 * 2 * b * d * d - 2 * b * d * d, 0.0
    # jacobian: (6L − 2)·B·D³ tangent products, B LUs and B solves with D rhs, (16L − 10)·B·D² products
    cubic = 10 * b * d**3 + b * (2 / 3 * d**3 + 2 * d**3)
    return 22 * b * d * d + cubic, cubic


@pytest.mark.parametrize("method", BUILTIN_METHODS)
def test_each_builtin_against_a_hand_count(method: str) -> None:
    for batch, dim in ((4, 8), (8, 8), (5, 12)):  # B = D included: the cubic split must still be right
        count = _count(method, dim, batch)
        flops, cubic = hand_count(method, batch, dim)
        assert count.flops == pytest.approx(flops, rel=1e-12), (batch, dim)
        assert count.flops_cubic == pytest.approx(cubic, rel=1e-12, abs=1e-9), (batch, dim)
        assert count.uncounted == () and count.cubic_rule.startswith("extents that grow with D observed")
        assert count.bytes == sum(op.bytes for op in count.by_op.values()) > 0
        assert all(op.bytes == 0 for op in count.by_op.values() if op.kind == "view")


def test_bytes_of_the_products_by_hand() -> None:
    b, d, size = 4, 8, 8  # float64
    count = _count("mlp", d, b)
    # addmm: bias, input, weight → output (2 layers); mm: δW (1) and δᵀz (2): inputs + output each
    addmm, mm = (d + b * d + d * d + b * d) * size, (b * d + d * d + b * d) * size
    assert count.by_op["aten.addmm"].bytes == 2 * addmm
    assert count.by_op["aten.mm"].bytes == 3 * mm
    assert count.by_kind()["product"].bytes == 2 * addmm + 3 * mm
    assert count.intensity == pytest.approx(count.flops / count.bytes)


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("method", BUILTIN_METHODS)
def test_the_registry_flop_model_is_the_count_in_closed_form(method: str, depth: int) -> None:
    # the count is authoritative; the registry's model must reproduce its product and linear-algebra part
    batch, dim = 6, 10
    for base in ("gaussian", "laplace"):
        count = _count(method, dim, batch, depth, base)
        vector = sum(op.flops for name, op in count.by_op.items() if name in ("aten.addmv", "aten.mv"))
        model = get_method(method).flops
        expected = matrix_flops(method, batch, dim, depth, gaussian_base=base == "gaussian")
        assert count.flops - vector == pytest.approx(expected, rel=1e-12), base
        assert count.flops_cubic == pytest.approx(
            model.d3(depth) * dim**3 + model.bd3(depth) * batch * dim**3
        )


def test_counting_leaves_the_flow_as_it_was_and_is_deterministic() -> None:
    flow = make_flow("relative", 16, 2, device="cpu", dtype=F64)
    before = {k: v.clone() for k, v in flow.state_dict().items()}
    x = torch.randn(8, 16, dtype=F64)
    first, second = count_step(flow, x, "relative"), count_step(flow, x, "relative")
    assert all(torch.equal(before[k], v) for k, v in flow.state_dict().items())
    assert (first.flops, first.bytes, first.by_op) == (second.flops, second.bytes, second.by_op)


def test_without_the_probe_b_equal_d_is_ambiguous_and_the_result_says_so() -> None:
    probed, by_value = _count("jacobian", 8, 8), _count("jacobian", 8, 8, probe=False)
    assert probed.flops == by_value.flops
    assert "by value" in by_value.cubic_rule and by_value.flops_cubic < probed.flops_cubic


def _gram_direction(flow: DenseFlow, x: torch.Tensor) -> torch.Tensor:
    """The relative direction with the metric W̃ᵀW̃ formed explicitly: a D×D×D product per layer."""
    loss = data_term_direction(flow, x)
    with torch.no_grad():
        for layer in flow.layers:
            layer.weight.grad.copy_(layer.weight.grad @ (layer.weight.mT @ layer.weight))
    return loss


def _eigh_direction(flow: DenseFlow, x: torch.Tensor) -> torch.Tensor:
    loss = data_term_direction(flow, x)
    with torch.no_grad():
        for layer in flow.layers:
            layer.weight.grad.add_(torch.linalg.eigh(layer.weight.mT @ layer.weight).eigenvectors, alpha=1e-3)
            layer.weight.grad.add_(torch.linalg.qr(layer.weight).Q, alpha=1e-3)
    return loss


@pytest.fixture
def test_methods() -> Iterator[None]:
    for name, direction in (("gram", _gram_direction), ("eigh_qr", _eigh_direction)):
        register_method(MethodSpec(name, DenseFlow, direction, FlopModel(lambda depth, gaussian: 0.0)))
    yield
    for name in ("gram", "eigh_qr"):
        unregister_method(name)


def test_a_dxdxd_product_in_a_step_is_cubic_by_counted_work_on_four_dims(test_methods: None) -> None:
    dims = (8, 16, 32, 64)
    gram = [_count("gram", d, 16) for d in dims]
    # the two products per layer (WᵀW, then G·(WᵀW)) are 2·D³ each, and the only cubic work
    assert [c.flops_cubic for c in gram] == pytest.approx([2 * 2 * 2 * d**3 for d in dims])
    assert fit_counted(dims, [c.flops for c in gram]).order == "cubic"
    relative = [_count("relative", d, 16).flops for d in dims]
    assert fit_counted(dims, relative).order == "quadratic"


def test_orders_of_the_builtins_by_counted_work() -> None:
    dims = (8, 12, 16, 24, 32)
    for method in BUILTIN_METHODS:
        fit = fit_counted(dims, [_count(method, d, 8).flops for d in dims])
        expected = "cubic" if method in ("ordinary", "autodiff", "jacobian") else "quadratic"
        assert fit.order == expected and fit.confirmed_at == (16.0,), method


def test_other_libraries_flows_are_counted_too() -> None:
    # peers have no FLOP model: their work is only counted. zuko's LU layer forms W = L·U in every step
    # (a D×D×D product forward and two backward per layer), so its step is cubic; nflows' applies the factors.
    pytest.importorskip("zuko")
    pytest.importorskip("nflows")
    dims = (8, 16, 32, 64)
    counts = {m: [_count(m, d, 16) for d in dims] for m in ("zuko_lu", "nflows_lu", "zuko_maf")}
    orders = {m: fit_counted(dims, [c.flops for c in cs]).order for m, cs in counts.items()}
    assert orders == {"zuko_lu": "cubic", "nflows_lu": "quadratic", "zuko_maf": "quadratic"}
    assert counts["zuko_lu"][-1].flops_cubic == 2 * 3 * 2 * 64**3
    assert all(c.uncounted == () for cs in counts.values() for c in cs)


def test_work_the_counter_cannot_see_is_named(test_methods: None) -> None:
    with pytest.warns(UncountedWorkWarning, match="aten._linalg_eigh.*aten.linalg_qr"):
        count = _count("eigh_qr", 8, 4)
    assert count.uncounted == ("aten._linalg_eigh", "aten.linalg_qr")
    assert (
        count.by_op["aten._linalg_eigh"].kind == "uncounted" and count.by_op["aten._linalg_eigh"].calls == 2
    )
    assert count.by_op["aten._linalg_eigh"].flops == 0 and count.by_op["aten._linalg_eigh"].bytes > 0
    quiet = _count("eigh_qr", 8, 4, warn=False)
    assert quiet.uncounted == count.uncounted


def test_matmul_peak_reports_its_size_and_threads() -> None:
    peak = matmul_peak("cpu", F64, size=64, repeats=2)
    assert (peak.size, peak.device, peak.dtype, peak.threads) == (
        64,
        "cpu",
        "float64",
        torch.get_num_threads(),
    )
    assert math.isfinite(peak.gflops) and peak.gflops == pytest.approx(2 * 64**3 / peak.seconds / 1e9)
    with pytest.raises(ValueError, match="size must be a positive integer"):
        matmul_peak("cpu", size=0)
