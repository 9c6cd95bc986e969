"""What every peer flow shares: the library owns the parameters, relgrad's harness evaluates them.

A :class:`PeerFlow` keeps its parameters in one module of the other library (``self.peer``: a zuko or
nflows flow built from that library's public classes). Two paths compute the same density from them:

* the **peer's own** ``log_prob`` (:meth:`PeerFlow.peer_log_prob`): what a user of that library calls.
  Training goes through it (:func:`peer_direction`: autograd on the library's NLL, the Euclidean gradient
  exactly as the library's users compute it), so a step's time and memory are the library's;
* **relgrad's harness** (:meth:`~relgrad_core.flow.Flow.log_prob`, ``evaluate_nll``, ``fit``): the peer's
  maps applied step by step, relgrad's σ and base density, and the data-independent log-det term
  (:meth:`~relgrad_core.flow.Flow.weight_log_abs_det`) cached per parameter state like every flow's.

``tests/core/test_peers.py`` checks that the two agree in float64, so the LLs the platform reports for a
peer are that library's model's LLs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ClassVar

import torch
from torch import nn

from relgrad_core.flow import Flow, LinearFn, SingularWeightError


class PeerFlow(Flow):
    """A :class:`~relgrad_core.flow.Flow` whose modules come from another library (``package``).

    Same constructor as every flow (what :func:`~relgrad_core.make_flow` passes); the base is the
    library's standard normal, so ``base`` must be ``"gaussian"``. Subclasses build ``self.peer`` in
    :meth:`_build_layers` and define :meth:`peer_log_prob`, :meth:`transform`,
    :meth:`weight_log_abs_det` and :meth:`_inverse`.
    """

    #: The distribution (import) name of the library the flow comes from.
    package: ClassVar[str] = ""
    #: The initial weights handed to :meth:`_build_layers` (``"identity"``: no QR when they are unused).
    initial_weights: ClassVar[str] = "orthogonal"
    peer: nn.Module

    def __init__(
        self,
        dim: int,
        depth: int,
        *,
        alpha: float = 0.3,
        bias: bool = True,
        base: str = "gaussian",
        device: str | torch.device | None = "cpu",
        dtype: torch.dtype = torch.float32,
        seed: int | None = None,
    ) -> None:
        if base != "gaussian":
            raise ValueError(
                f"{type(self).__name__} has {self.package}'s standard normal base only, got base={base!r}"
            )
        super().__init__(
            dim,
            depth,
            alpha=alpha,
            bias=bias,
            base=base,
            device=device,
            dtype=dtype,
            seed=seed,
            init=self.initial_weights,
        )

    # --- what a peer defines ------------------------------------------------------------------
    def _build_layers(
        self, first_weight: Callable[[], torch.Tensor], bias: bool, generator: torch.Generator | None
    ) -> None:
        raise NotImplementedError

    def peer_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x)`` per sample computed by the library itself (unchecked input, differentiable)."""
        raise NotImplementedError

    def _inverse(self, z: torch.Tensor) -> torch.Tensor:
        """``g⁻¹(z)`` through the library's inverse maps (unchecked input)."""
        raise NotImplementedError

    # --- Flow's machinery, adapted ------------------------------------------------------------
    def hidden(self, x: torch.Tensor, linear: LinearFn | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} has no dense layers to expose one by one")

    @staticmethod
    def _no_linear(linear: LinearFn | None) -> None:
        if linear is not None:
            raise ValueError("a peer flow has no dense weights to plug a custom linear function into")

    @torch.no_grad()
    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """``x = g⁻¹(z)`` through the library's own inverse maps."""
        return self._inverse(self.check_input(z, "z"))

    def check_invertible(self) -> None:
        """Every parameter finite (each peer's parameterisation is invertible whenever it is finite,
        unless a subclass says more)."""
        for name, p in self.named_parameters():
            if not bool(torch.isfinite(p).all()):
                raise SingularWeightError(f"{name}: non-finite entries; the flow is not invertible")

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, package={self.package!r}"


def peer_direction(flow: Flow, x: torch.Tensor) -> torch.Tensor:
    """The Euclidean gradient as the peer library's users compute it: autograd on its own mean NLL.

    Returns the data-term NLL like every direction: the NLL plus the (cheap, data-independent) log-det
    term of the weights.
    """
    assert isinstance(flow, PeerFlow)  # MethodSpec.check_flow has checked it
    nll = -flow.peer_log_prob(x).mean()
    nll.backward()
    with torch.no_grad():
        return nll.detach() + flow.weight_log_abs_det()


@contextmanager
def seeded_init(generator: torch.Generator | None) -> Iterator[None]:
    """Seed torch's global RNG from ``generator`` for a library that initialises its modules from it, and
    restore the RNG afterwards (nothing is seeded when ``generator`` is ``None``)."""
    if generator is None:
        yield
        return
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
