"""Other libraries' flows as methods: relgrad's harness computes each library's own density, the step is
the library's Euclidean gradient, and a missing package is named with the extra to install.

Every test of a peer skips when its package is not installed (``make setup`` installs the ``peers`` extra,
so CI runs them all).
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from torch.func import jacrev, vmap

from relgrad_core import (
    DenseFlow,
    backward,
    evaluate_nll,
    fit,
    flop_ratio,
    get_method,
    load_dataset,
    make_flow,
    matrix_flops,
    method_names,
)
from relgrad_core.peers import INSTALL_HINT, PEER_NAMES, PEERS
from tests.core.conftest import hide_peers

PACKAGE = {p.name: p.package for p in PEERS}


def _peer(name: str, dim: int = 5, depth: int = 3, seed: int = 0, dtype=torch.float64):
    pytest.importorskip(PACKAGE[name])
    return make_flow(name, dim, depth, dtype=dtype, device="cpu", seed=seed)


def _perturbed(name: str, **kwargs):
    """A peer flow moved away from its init (every parameter), so no term vanishes by accident."""
    flow = _peer(name, **kwargs)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return flow


def _library_log_prob(flow, x: torch.Tensor) -> torch.Tensor:
    """``log p(x)`` computed by the library's own distribution object, nothing of relgrad's in between."""
    if PACKAGE_OF[type(flow).__name__] == "nflows":
        return flow.peer.log_prob(x)  # nflows.flows.base.Flow
    return flow.peer().log_prob(x)  # zuko.lazy.Flow -> zuko.distributions.NormalizingFlow


PACKAGE_OF = {p.flow_class.__name__: p.package for p in PEERS}


def _x(n: int = 16, dim: int = 5) -> torch.Tensor:
    return 1.5 * torch.randn(n, dim, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


@pytest.mark.parametrize("name", PEER_NAMES)
def test_harness_log_likelihood_equals_the_librarys_own_log_prob(name):
    flow, x = _perturbed(name), _x()
    library = _library_log_prob(flow, x)
    torch.testing.assert_close(flow.log_prob(x), library, rtol=1e-12, atol=1e-10)
    assert evaluate_nll(flow, x) == pytest.approx(-library.mean().item(), rel=1e-12, abs=1e-10)
    assert evaluate_nll(flow, x, batch_size=3) == pytest.approx(-library.mean().item(), rel=1e-12)
    # the cached log-det term follows the parameters (an in-place optimizer step changes them)
    with torch.no_grad():
        for p in flow.parameters():
            p.mul_(1.1)
    assert evaluate_nll(flow, x) == pytest.approx(-_library_log_prob(flow, x).mean().item(), rel=1e-12)


@pytest.mark.parametrize("name", PEER_NAMES)
def test_the_density_is_the_change_of_variables_of_the_forward_map(name):
    # log N(g(x)) + log|det ∂g/∂x| with the Jacobian by autograd of the map alone: no log-det formula of
    # either library or of relgrad's enters this side
    flow, x = _perturbed(name), _x(6)

    def g(sample: torch.Tensor) -> torch.Tensor:
        return flow.transform(sample.unsqueeze(0))[0].squeeze(0)

    jacobians = vmap(jacrev(g))(x)
    z = flow.transform(x)[0]
    normal = -0.5 * (z**2).sum(dim=1) - 0.5 * x.shape[1] * math.log(2 * math.pi)
    expected = normal + torch.stack([torch.linalg.slogdet(j)[1] for j in jacobians])
    torch.testing.assert_close(_library_log_prob(flow, x), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", PEER_NAMES)
def test_the_step_is_the_euclidean_gradient_of_the_nll(name):
    flow, x = _perturbed(name), _x()
    (-flow.log_prob(x).mean()).backward()  # relgrad's harness, log-det term differentiated
    expected = {n: p.grad.clone() for n, p in flow.named_parameters()}
    data_term = -flow.data_log_prob(x).mean().item()
    loss = backward(flow, x, name)  # the method: autograd through the library's own log_prob
    assert loss.item() == pytest.approx(data_term, rel=1e-12)
    for n, p in flow.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, n
        torch.testing.assert_close(p.grad, expected[n], rtol=1e-10, atol=1e-12, msg=n)


@pytest.mark.parametrize("name", PEER_NAMES)
def test_inverse_and_sample(name):
    flow, x = _perturbed(name), _x()
    torch.testing.assert_close(flow.inverse(flow(x)[0]), x, rtol=1e-9, atol=1e-9)
    samples = flow.sample(50, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (50, 5) and torch.isfinite(flow.log_prob(samples)).all()


@pytest.mark.parametrize("name", PEER_NAMES)
def test_float32_on_real_data_agrees_with_the_library(name):
    data = load_dataset("digits", seed=0)
    flow = _peer(name, dim=data.dim, depth=2, dtype=torch.float32)
    fit(flow, data, method=name, lr=1e-3, batch_size=64, max_steps=30)
    x = data.test[:256]
    library = _library_log_prob(flow, x).detach()
    torch.testing.assert_close(flow.log_prob(x).detach(), library, rtol=1e-5, atol=1e-3)


def test_zuko_lu_starts_as_the_denseflow_of_the_same_seed_and_nflows_lu_orthogonal():
    x = _x()
    zuko = _peer("zuko_lu", seed=4)
    torch.testing.assert_close(zuko.log_prob(x), DenseFlow(5, 3, dtype=torch.float64, seed=4).log_prob(x))
    nflows = _peer("nflows_lu", seed=4)
    assert abs(nflows.weight_log_abs_det().item()) < 1e-12  # orthogonal start: log|det W| = 0


@pytest.mark.parametrize("name", PEER_NAMES)
def test_seeded_construction(name):
    a, b, c = (_peer(name, seed=s) for s in (1, 1, 2))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))


@pytest.mark.parametrize("name", PEER_NAMES)
def test_registry_entry_has_no_flop_model_but_a_memory_estimate(name):
    pytest.importorskip(PACKAGE[name])
    spec = get_method(name)
    assert spec.peer == PACKAGE[name] and spec.flops is None and spec.cost.startswith("O(")
    assert math.isnan(flop_ratio(name, 2)) and math.isnan(matrix_flops(name, 64, 128, 2))
    assert spec.memory(1024, 2, 64) > spec.memory(512, 2, 64) > 0
    assert method_names().index(name) > method_names().index("mlp")


def test_bad_construction_is_one_line():
    pytest.importorskip("zuko")
    pytest.importorskip("nflows")
    with pytest.raises(ValueError, match="standard normal base only, got base='laplace'"):
        make_flow("zuko_lu", 3, 2, base="laplace")
    with pytest.raises(ValueError, match="bias=False is not available for nflows_lu"):
        make_flow("nflows_lu", 3, 2, bias=False)
    with pytest.raises(ValueError, match="no dense weights"):
        make_flow("zuko_maf", 3, 2).data_log_prob(torch.zeros(1, 3), lambda z, w, b: z)


def test_importing_relgrad_core_imports_neither_library():
    code = "import sys, relgrad_core; print('zuko' in sys.modules, 'nflows' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.fixture
def peers_missing(monkeypatch):
    hide_peers(monkeypatch)


def test_a_missing_package_names_the_extra_to_install(peers_missing):
    for name in PEER_NAMES:
        assert name not in method_names()
        with pytest.raises(ValueError, match=f"method '{name}' is not installed: it needs the") as info:
            make_flow(name, 3, 2)
        assert INSTALL_HINT in str(info.value) and "\n" not in str(info.value)
