"""The gradient methods against autograd in float64, and the relative step's cost structure."""

import re

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from relgrad_core import DenseFlow, LUFlow, backward, get_method, make_base, make_flow, method_names
from relgrad_core.gradients import per_matrix_logabsdet
from tests.core.conftest import perturbed_flow


def euclidean_gradients(flow, x):
    """The full Euclidean gradient of the mean NLL, by plain autograd through slogdet."""
    for p in flow.parameters():
        p.grad = None
    (-flow.log_prob(x).mean()).backward()
    grads = [p.grad.clone() for p in flow.parameters()]
    for p in flow.parameters():
        p.grad = None
    return grads


def augmented(layer):
    d = layer.weight.shape[0]
    w = torch.zeros(d + 1, d + 1, dtype=layer.weight.dtype)
    w[:d, :d] = layer.weight.detach()
    if layer.bias is not None:
        w[:d, d] = layer.bias.detach()
    w[d, d] = 1.0
    return w


@pytest.mark.parametrize(
    "dim,depth,batch,bias",
    [
        (1, 1, 1, True),
        (2, 2, 5, True),
        (5, 3, 7, True),
        (5, 3, 7, False),
        (16, 2, 3, True),
        (16, 4, 64, False),
        (33, 3, 10, True),
    ],
)
def test_relative_direction_is_euclidean_gradient_times_augmented_metric(dim, depth, batch, bias):
    flow = perturbed_flow(dim, depth, bias=bias, seed=dim + depth)
    x = 2 * torch.randn(batch, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(batch))
    grads = iter(euclidean_gradients(flow, x))
    expected = []
    for layer in flow.layers:
        g_w = next(grads)
        g_b = next(grads) if bias else torch.zeros(dim, dtype=torch.float64)
        w_aug = augmented(layer)
        expected.append(torch.cat([g_w, g_b[:, None]], 1) @ w_aug.T @ w_aug)
    backward(flow, x, "relative")
    for layer, rel in zip(flow.layers, expected, strict=True):
        torch.testing.assert_close(layer.weight.grad, rel[:, :dim], rtol=1e-10, atol=1e-10)
        if bias:
            torch.testing.assert_close(layer.bias.grad, rel[:, dim], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dim,depth,batch,bias", [(3, 2, 4, True), (8, 3, 6, False), (12, 2, 5, True)])
def test_ordinary_autodiff_jacobian_equal_the_euclidean_gradient(dim, depth, batch, bias):
    flow = perturbed_flow(dim, depth, bias=bias, seed=3)
    x = torch.randn(batch, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    reference = euclidean_gradients(flow, x)
    for method in ("ordinary", "autodiff", "jacobian"):
        backward(flow, x, method)
        for p, ref in zip(flow.parameters(), reference, strict=True):
            torch.testing.assert_close(p.grad, ref, rtol=1e-10, atol=1e-10, msg=method)


def test_every_method_returns_the_same_data_term_and_fills_every_gradient():
    x = torch.randn(6, 5, dtype=torch.float64)
    dense = perturbed_flow(5, 3, seed=1)
    # the dense methods share one flow; lu and the peers train flows of their own
    for method in method_names():
        own = get_method(method).flow_class is not DenseFlow
        flow = make_flow(method, 5, 3, dtype=torch.float64) if own else dense
        expected = -flow.data_log_prob(x).mean().item()
        loss = backward(flow, x, method)
        assert not loss.requires_grad
        assert loss.item() == pytest.approx(expected, rel=1e-12), method
        for name, p in flow.named_parameters():
            assert p.grad is not None and torch.all(torch.isfinite(p.grad)), (method, name)
            assert p.grad.abs().sum() > 0, (method, name)


def test_mlp_is_the_data_term_gradient_only():
    flow = perturbed_flow(4, 2, seed=0)
    x = torch.randn(5, 4, dtype=torch.float64)
    (-flow.data_log_prob(x).mean()).backward()
    expected = [p.grad.clone() for p in flow.parameters()]
    backward(flow, x, "mlp")
    for p, e in zip(flow.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, e, rtol=1e-12, atol=1e-12)


def test_lu_gradient_matches_autograd_of_its_exact_nll():
    flow = LUFlow(6, 3, dtype=torch.float64, seed=2)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(8, 6, dtype=torch.float64)
    reference = euclidean_gradients(flow, x)
    backward(flow, x, "lu")
    for p, ref in zip(flow.parameters(), reference, strict=True):
        torch.testing.assert_close(p.grad, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_relative_direction_is_a_descent_direction(seed):
    flow = perturbed_flow(10, 3, seed=seed)
    x = torch.randn(32, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    reference = euclidean_gradients(flow, x)
    backward(flow, x, "relative")
    inner = sum((p.grad * g).sum() for p, g in zip(flow.parameters(), reference, strict=True))
    assert inner > 0  # ⟨G, G·W̃ᵀW̃⟩ = tr(G W̃ᵀ W̃ Gᵀ) > 0
    before = -flow.log_prob(x).mean().item()
    with torch.no_grad():
        for p in flow.parameters():
            p.sub_(1e-4 * p.grad)
    assert -flow.log_prob(x).mean().item() < before


def test_per_matrix_logabsdet_is_right_above_d150():
    # torch 2.13's multi-threaded batched LU is wrong above D ≈ 150 on the CPU; the loop must not be
    g = torch.Generator().manual_seed(0)
    mats = torch.randn(3, 200, 200, generator=g) / 200**0.5 + torch.eye(200)
    got = per_matrix_logabsdet(mats)
    for m, value in zip(mats, got, strict=True):
        assert value.item() == pytest.approx(torch.linalg.slogdet(m.double())[1].item(), rel=1e-4, abs=1e-3)


def test_unknown_or_mismatched_method_is_rejected():
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="unknown method 'newton'"):
        backward(DenseFlow(3, 2), x, "newton")
    with pytest.raises(ValueError, match="trains a flow of class LUFlow"):
        backward(DenseFlow(3, 2), x, "lu")
    with pytest.raises(ValueError, match="trains a flow of class DenseFlow"):
        backward(LUFlow(3, 2), x, "relative")


# aten names of factorisations, inverses, solves and determinants (overload suffix stripped)
CUBIC = re.compile(r"^_?(linalg_|lu_|lu$|cholesky|triangular_solve|inverse|det$|logdet|slogdet|svd|qr$|eig)")


def _cubic(ops):
    return sorted(op for op in ops if CUBIC.match(op.split(".")[0]))


class _OpRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(func.__name__)
        return func(*args, **(kwargs or {}))


def _ops_of_step(method):
    flow = DenseFlow(32, 3, seed=0)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
    x = torch.randn(16, 32)
    with _OpRecorder() as recorder:
        backward(flow, x, method)
        opt.step()
    return recorder.ops


def test_relative_step_dispatches_no_cubic_operation():
    ops = _ops_of_step("relative")
    assert any("mm" in op for op in ops)  # the recorder really sees the step
    assert _cubic(ops) == []
    # and the recorder would have caught one: the baselines do factorise
    assert "linalg_inv_ex" in " ".join(_cubic(_ops_of_step("ordinary")))
    assert "slogdet" in " ".join(_cubic(_ops_of_step("autodiff")))


def _flops(method, dim, batch=64, depth=2, base="gaussian"):
    flow = DenseFlow(dim, depth, seed=0, base=base)
    x = torch.randn(batch, dim)
    with FlopCounterMode(display=False) as counter:
        backward(flow, x, method)
    return counter.get_total_flops()


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_relative_flops_grow_4x_when_d_doubles_and_match_the_count(depth):
    small, large = _flops("relative", 128, depth=depth), _flops("relative", 256, depth=depth)
    assert large / small == pytest.approx(4.0, rel=0.02)
    # in units of B·D²: forward 2 per layer; backward δᵀ(yW) and yW 4 per layer, δW 2 more on hidden layers
    # that need an input gradient; the Gaussian head gets its δW from yW for free
    unit = 64 * 256**2
    hidden_with_input_grad = max(depth - 2, 0)
    gaussian = 2 * depth + 4 * depth + 2 * hidden_with_input_grad
    generic = gaussian + 2 * (depth > 1)
    assert large == pytest.approx(gaussian * unit, rel=0.02)
    assert _flops("relative", 256, depth=depth, base="laplace") == pytest.approx(generic * unit, rel=0.02)
    # the MLP: forward 2, weight gradient 2 per layer, input gradient 2 on every layer but the first
    mlp = 2 * depth + 2 * depth + 2 * (depth - 1)
    assert _flops("mlp", 256, depth=depth) == pytest.approx(mlp * unit, rel=0.02)


@pytest.mark.parametrize("base", ["laplace", "logistic"])
def test_relative_identity_with_non_gaussian_bases(base):
    flow = perturbed_flow(6, 3, seed=2)
    flow.base = make_base(base)
    x = torch.randn(9, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    grads = iter(euclidean_gradients(flow, x))
    expected = []
    for layer in flow.layers:
        g_w, g_b = next(grads), next(grads)
        w_aug = augmented(layer)
        expected.append(torch.cat([g_w, g_b[:, None]], 1) @ w_aug.T @ w_aug)
    backward(flow, x, "relative")
    for layer, rel in zip(flow.layers, expected, strict=True):
        torch.testing.assert_close(layer.weight.grad, rel[:, :6], rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(layer.bias.grad, rel[:, 6], rtol=1e-10, atol=1e-10)
