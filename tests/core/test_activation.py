"""σ, log σ' and σ⁻¹ on both branches, at the extremes, against autograd in float64."""

import math

import pytest
import torch

from relgrad_core.activation import (
    check_alpha,
    inverse_smooth_leaky_relu,
    log_derivative,
    smooth_leaky_relu,
)

ALPHAS = [0.01, 0.3, 0.9]


def _grid(dtype: torch.dtype) -> torch.Tensor:
    # both branches, the kink region and the extremes
    return torch.cat(
        [torch.linspace(-50, 50, 2001, dtype=dtype), torch.tensor([-50.0, 0.0, 50.0], dtype=dtype)]
    )


@pytest.mark.parametrize("alpha", ALPHAS)
def test_sigma_matches_definition_on_both_branches(alpha):
    y = _grid(torch.float64)
    expected = alpha * y + (1 - alpha) * torch.log1p(torch.exp(-y.abs())) + (1 - alpha) * y.clamp_min(0)
    torch.testing.assert_close(smooth_leaky_relu(y, alpha), expected, rtol=1e-12, atol=1e-12)
    # asymptotes: slope α far left, slope 1 far right
    assert smooth_leaky_relu(torch.tensor(-50.0, dtype=torch.float64), alpha).item() == pytest.approx(
        -50 * alpha, abs=1e-12
    )
    assert smooth_leaky_relu(torch.tensor(50.0, dtype=torch.float64), alpha).item() == pytest.approx(
        50.0, abs=1e-12
    )


@pytest.mark.parametrize("alpha", ALPHAS)
def test_log_derivative_matches_autograd(alpha):
    y = _grid(torch.float64).requires_grad_(True)
    (grad,) = torch.autograd.grad(smooth_leaky_relu(y, alpha).sum(), y)
    torch.testing.assert_close(log_derivative(y.detach(), alpha), grad.log(), rtol=1e-12, atol=1e-12)
    assert log_derivative(torch.tensor(-50.0), alpha).item() == pytest.approx(math.log(alpha), rel=1e-6)
    assert log_derivative(torch.tensor(50.0), alpha).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
def test_inverse_round_trip_both_branches(alpha, dtype, tol):
    y = _grid(dtype)
    recovered = inverse_smooth_leaky_relu(smooth_leaky_relu(y, alpha), alpha)
    assert torch.all(torch.isfinite(recovered))
    torch.testing.assert_close(recovered, y, rtol=tol, atol=tol)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_inverse_of_arbitrary_outputs(alpha):
    z = torch.cat(
        [
            torch.linspace(-50, 50, 1001, dtype=torch.float64),
            torch.tensor([-1e3, 1e3], dtype=torch.float64),
        ]
    )
    y = inverse_smooth_leaky_relu(z, alpha)
    torch.testing.assert_close(smooth_leaky_relu(y, alpha), z, rtol=1e-12, atol=1e-10)


def test_identity_when_alpha_is_one():
    y = torch.linspace(-5, 5, 11, dtype=torch.float64)
    torch.testing.assert_close(smooth_leaky_relu(y, 1.0), y)
    torch.testing.assert_close(inverse_smooth_leaky_relu(y, 1.0), y)


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan")])
def test_alpha_out_of_range_is_rejected(bad):
    with pytest.raises(ValueError, match="alpha"):
        check_alpha(bad)
