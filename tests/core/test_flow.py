"""DenseFlow/LUFlow: exact log-density, inverse, sampling, caching, devices, persistence."""

import pytest
import torch

from relgrad_core import DenseFlow, LUFlow, SingularWeightError, backward, make_flow, resolve_device
from tests.core.conftest import perturbed_flow


def _jacobian_logdet(flow, x_row):
    jac = torch.autograd.functional.jacobian(lambda v: flow.transform(v.unsqueeze(0))[0].squeeze(0), x_row)
    return torch.linalg.slogdet(jac)[1]


@pytest.mark.parametrize("dim,depth,bias", [(1, 1, True), (3, 2, True), (6, 3, False), (10, 4, True)])
def test_log_abs_det_matches_autograd_jacobian(dim, depth, bias):
    flow = perturbed_flow(dim, depth, bias=bias, seed=dim)
    x = torch.randn(5, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    _, log_abs_det = flow(x)
    expected = torch.stack([_jacobian_logdet(flow, row) for row in x])
    torch.testing.assert_close(log_abs_det, expected, rtol=1e-10, atol=1e-10)


def test_log_prob_is_a_normalised_density_in_2d():
    flow = perturbed_flow(2, 2, seed=3)
    grid = torch.linspace(-30, 30, 601, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    with torch.no_grad():
        p = flow.log_prob(torch.stack([xx.flatten(), yy.flatten()], 1)).exp().reshape(601, 601)
    mass = torch.trapezoid(torch.trapezoid(p, grid, dim=1), grid).item()
    assert mass == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize("cls", [DenseFlow, LUFlow])
@pytest.mark.parametrize("alpha", [0.01, 0.3])
def test_inverse_round_trip(cls, alpha):
    flow = cls(8, 3, alpha=alpha, dtype=torch.float64, seed=0)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = 3 * torch.randn(64, 8, dtype=torch.float64)
    z, _ = flow(x)
    torch.testing.assert_close(flow.inverse(z), x, rtol=1e-9, atol=1e-9)


def test_inverse_round_trip_float32_realistic():
    flow = perturbed_flow(32, 3, seed=5, dtype=torch.float32)
    x = torch.randn(256, 32)
    with torch.no_grad():
        z, _ = flow(x)
    torch.testing.assert_close(flow.inverse(z), x, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("base", ["gaussian", "laplace", "logistic"])
def test_sample_shape_and_log_prob_finite(base):
    flow = DenseFlow(4, 2, base=base, seed=0)
    x = flow.sample(100, generator=torch.Generator().manual_seed(0))
    assert x.shape == (100, 4) and x.dtype == torch.float32
    assert torch.all(torch.isfinite(flow.log_prob(x)))


def test_log_det_is_cached_per_parameter_version(monkeypatch):
    flow = perturbed_flow(6, 3, seed=1)
    calls = {"n": 0}
    real = torch.linalg.slogdet

    def counting(a):
        calls["n"] += 1
        return real(a)

    monkeypatch.setattr(torch.linalg, "slogdet", counting)
    x = torch.randn(10, 6, dtype=torch.float64)
    with torch.no_grad():
        first = flow.log_prob(x)
        for _ in range(5):
            torch.testing.assert_close(flow.log_prob(x), first)
    assert calls["n"] == 3  # once per layer, once in total
    opt = torch.optim.SGD(flow.parameters(), lr=0.1)
    (-flow.log_prob(x).mean()).backward()
    opt.step()
    calls["n"] = 0
    with torch.no_grad():
        changed = flow.log_prob(x)
        flow.log_prob(x)
    assert calls["n"] == 3  # recomputed once after the in-place update, then reused
    assert not torch.allclose(changed, first)


@pytest.mark.parametrize("fused", [True, False])
def test_log_det_cache_sees_optimizer_updates(fused):
    # fused Adam updates parameters without bumping their version counters: the cache must still notice
    flow = perturbed_flow(6, 2, seed=3)
    x = torch.randn(10, 6, dtype=torch.float64)
    opt = torch.optim.Adam(flow.parameters(), lr=0.05, fused=fused)
    for _ in range(3):
        with torch.no_grad():
            cached = flow.log_prob(x)
        fresh = flow.base.log_prob(flow(x)[0]).sum(1) + flow.transform(x)[1] + flow.weight_log_abs_det()
        torch.testing.assert_close(cached, fresh.detach(), rtol=1e-12, atol=1e-12)
        backward(flow, x, "relative")
        opt.step()


def test_euclidean_gradient_through_log_prob():
    flow = perturbed_flow(4, 2, seed=2)
    x = torch.randn(7, 4, dtype=torch.float64)
    (-flow.log_prob(x).mean()).backward()
    for layer in flow.layers:
        assert layer.weight.grad is not None and torch.all(torch.isfinite(layer.weight.grad))


def test_orthogonal_init_and_zero_bias():
    flow = DenseFlow(16, 3, seed=0, dtype=torch.float64)
    for layer in flow.layers:
        torch.testing.assert_close(layer.weight @ layer.weight.T, torch.eye(16, dtype=torch.float64))
        assert torch.all(layer.bias == 0)
    assert flow.cached_weight_log_abs_det().abs().item() < 1e-10
    a, b = DenseFlow(5, 2, seed=7), DenseFlow(5, 2, seed=7)
    torch.testing.assert_close(a.layers[0].weight, b.layers[0].weight)


def test_save_load_round_trip(tmp_path):
    flow = perturbed_flow(5, 3, seed=4)
    path = tmp_path / "flow.pt"
    torch.save(flow.state_dict(), path)
    fresh = DenseFlow(5, 3, dtype=torch.float64, seed=99)
    fresh.load_state_dict(torch.load(path))
    x = torch.randn(9, 5, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(fresh.log_prob(x), flow.log_prob(x), rtol=0, atol=0)


def test_make_flow_picks_the_class():
    assert isinstance(make_flow("lu", 4, 2, device="cpu"), LUFlow)
    assert isinstance(make_flow("relative", 4, 2, device="cpu"), DenseFlow)
    with pytest.raises(ValueError, match="unknown method 'newton'"):
        make_flow("newton", 4, 2)


def test_device_auto_and_dtype():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    flow = DenseFlow(3, 2, device="auto", dtype=torch.float64)
    assert flow.device.type == expected and flow.dtype == torch.float64
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu-9000")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised on CPU-only machines")
def test_cuda_requested_without_cuda():
    with pytest.raises(ValueError, match="CUDA is not available"):
        DenseFlow(3, 2, device="cuda")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"dim": 0, "depth": 2}, "dim must be a positive integer"),
        ({"dim": 3, "depth": 0}, "depth must be a positive integer"),
        ({"dim": 3, "depth": 2, "alpha": 0.0}, "alpha"),
        ({"dim": 3, "depth": 2, "base": "cauchy"}, "unknown base density"),
    ],
)
def test_bad_construction_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DenseFlow(**kwargs)


def test_wrong_input_dimension():
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, 3\)"):
        DenseFlow(3, 2).log_prob(torch.randn(4, 5))


def test_singular_weights_detected():
    flow = DenseFlow(4, 2, seed=0)
    with torch.no_grad():
        flow.layers[1].weight[2] = flow.layers[1].weight[0]
    with pytest.raises(SingularWeightError, match="layer 1: weight matrix is singular"):
        flow.check_invertible()


def test_identity_init_and_bad_init_names():
    for cls in (DenseFlow, LUFlow):
        flow = cls(5, 2, init="identity", dtype=torch.float64)
        x = torch.randn(7, 5, dtype=torch.float64)
        assert torch.allclose(flow.layers[-1](x), x)  # the affine last layer starts at y = x
        assert abs(float(flow.weight_log_abs_det().detach())) < 1e-12
    with pytest.raises(ValueError, match="init must be one of orthogonal, identity, got 'zeros'"):
        DenseFlow(5, 2, init="zeros")
