"""An Adam variant that rescales each parameter tensor as a whole.

Adam divides every coordinate by its own running RMS. For the relative direction ``ΔW = G·W̃ᵀW̃`` that
per-coordinate rescaling is not aligned with the singular directions of ``W`` where the preconditioner acts,
so it distorts the direction the method chose. ``LayerAdam`` keeps Adam's momentum and bias correction but
divides by one running RMS per tensor:

    m ← β₁m + (1−β₁)Δ,   v ← β₂v + (1−β₂)·mean(Δ²),   p ← p − lr·m̂ / (√v̂ + ε)

so each layer's step has a controlled size while its direction (and the relative gradient's equivariance)
is untouched. O(size of the tensor) per step, like Adam.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class LayerAdam(torch.optim.Optimizer):
    """Adam with one second-moment scalar per parameter tensor (see module docstring)."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        if not lr > 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros((), dtype=p.dtype, device=p.device)
                state["step"] += 1
                t = state["step"]
                state["exp_avg"].lerp_(p.grad, 1 - beta1)
                state["exp_avg_sq"].mul_(beta2).add_(p.grad.square().mean(), alpha=1 - beta2)
                denom = (state["exp_avg_sq"] / (1 - beta2**t)).sqrt_().add_(group["eps"])
                p.addcdiv_(state["exp_avg"], denom, value=-group["lr"] / (1 - beta1**t))
        return loss


__all__ = ["LayerAdam"]
