"""LayerAdam: one second-moment scalar per tensor, Adam's bias correction, direction preserved."""

import pytest
import torch

from relgrad_core.optim import LayerAdam
from relgrad_core.training import make_optimizer


def test_first_step_moves_along_the_gradient_with_unit_rms():
    p = torch.nn.Parameter(torch.zeros(3, 4, dtype=torch.float64))
    g = torch.arange(12, dtype=torch.float64).reshape(3, 4) - 5.0
    p.grad = g.clone()
    LayerAdam([p], lr=0.1, eps=0.0).step()
    # bias-corrected m̂ = g, v̂ = mean(g²): the step is −lr·g/RMS(g), parallel to g (unlike Adam's sign(g))
    torch.testing.assert_close(p.detach(), -0.1 * g / g.square().mean().sqrt())


def test_matches_a_hand_rolled_two_step_recursion():
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    start = p.detach().clone()
    grads = [torch.randn(5, dtype=torch.float64) for _ in range(2)]
    opt = LayerAdam([p], lr=0.01, betas=(0.8, 0.9), eps=1e-8)
    m, v, x = torch.zeros(5, dtype=torch.float64), 0.0, start.clone()
    for t, g in enumerate(grads, start=1):
        p.grad = g.clone()
        opt.step()
        m = 0.8 * m + 0.2 * g
        v = 0.9 * v + 0.1 * g.square().mean()
        x = x - 0.01 * (m / (1 - 0.8**t)) / ((v / (1 - 0.9**t)).sqrt() + 1e-8)
    torch.testing.assert_close(p.detach(), x)


def test_available_by_name_and_validated():
    assert isinstance(make_optimizer("layer_adam", [torch.nn.Parameter(torch.zeros(2))], 1e-3), LayerAdam)
    with pytest.raises(ValueError, match="learning rate"):
        LayerAdam([torch.nn.Parameter(torch.zeros(2))], lr=0.0)
