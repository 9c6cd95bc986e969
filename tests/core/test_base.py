"""Base densities: normalised, matching torch.distributions, samplers with the right law."""

import math

import pytest
import torch

from relgrad_core.base import BASES, make_base

REFERENCE = {
    "gaussian": torch.distributions.Normal(0.0, 1.0),
    "laplace": torch.distributions.Laplace(0.0, 1.0),
}


@pytest.mark.parametrize("name", BASES)
def test_density_integrates_to_one(name):
    z = torch.linspace(-60, 60, 240001, dtype=torch.float64)
    p = make_base(name).log_prob(z).exp()
    assert torch.trapezoid(p, z).item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("name", ["gaussian", "laplace"])
def test_log_prob_matches_torch_distributions(name):
    z = torch.linspace(-50, 50, 101, dtype=torch.float64)
    torch.testing.assert_close(make_base(name).log_prob(z), REFERENCE[name].log_prob(z))


def test_logistic_is_finite_at_extremes():
    z = torch.tensor([-100.0, -50.0, 0.0, 50.0, 100.0], dtype=torch.float64)
    lp = make_base("logistic").log_prob(z)
    assert torch.all(torch.isfinite(lp))
    assert lp[2].item() == pytest.approx(-2 * math.log(2))
    assert lp[0].item() == pytest.approx(-100.0, abs=1e-12)


@pytest.mark.parametrize("name,var", [("gaussian", 1.0), ("laplace", 2.0), ("logistic", math.pi**2 / 3)])
def test_samples_have_the_right_moments(name, var):
    g = torch.Generator().manual_seed(0)
    s = make_base(name).sample((200000,), device=torch.device("cpu"), dtype=torch.float64, generator=g)
    assert torch.all(torch.isfinite(s))
    assert s.mean().item() == pytest.approx(0.0, abs=0.02)
    assert s.var().item() == pytest.approx(var, rel=0.03)


def test_unknown_base_is_rejected():
    with pytest.raises(ValueError, match="unknown base density 'cauchy'"):
        make_base("cauchy")
