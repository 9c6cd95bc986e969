"""Other libraries' flows as methods, in the same harness: what a user would otherwise pick.

``pip install -e ".[peers]"`` (zuko, nflows) adds three methods to the registry, each a
:class:`~relgrad_core.peers.base.PeerFlow` built from the library's public classes and trained by
autograd through the library's own ``log_prob`` (the Euclidean gradient, as its users compute it):

=========  ==========================================================================  ====================
method     flow                                                                        cost per step
=========  ==========================================================================  ====================
zuko_lu    DenseFlow's architecture, zuko ``LULinearTransform`` layers (W = P·L·U)     O(L·(B·D² + D³))
nflows_lu  DenseFlow's architecture, nflows ``LULinear`` layers (W = P·L·U)            O(L·B·D²)
zuko_maf   zuko ``MAF``: L affine autoregressive transforms, MADE 2 × max(D, 64)       O(L·B·D²)
=========  ==========================================================================  ====================

Both LU peers assemble ``L`` and ``U`` as dense matrices at every call. zuko then forms the product ``L·U``
(one D³ product per layer forward, two backward) before applying it; nflows applies the two triangles as
two dense products (and scatters its parameter vectors into them: D² memory traffic per layer). Peers have
no hand-written FLOP model (``MethodSpec.flops = None``): their work is counted, not modelled; ``memory``
says what they hold beyond D×D layers.

This module imports neither library: it registers a method when its package is importable (so importing
``relgrad_core`` stays cheap, and Ray's workers, which import ``relgrad_core``, know the peers too) and
otherwise notes the name as known but not installed, so asking for it says which extra to install.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from relgrad_core.flow import Flow
from relgrad_core.methods import MemoryModel, MethodSpec, method_names, note_unavailable, register_method
from relgrad_core.peers.base import PeerFlow, peer_direction
from relgrad_core.peers.nflows_flows import NflowsLUFlow
from relgrad_core.peers.zuko_flows import ZukoLUFlow, ZukoMAF, maf_hidden

#: How to install every peer (one line, quoted in every "not installed" message).
INSTALL_HINT = 'pip install -e ".[peers]"'


def _lu_memory(dim: int, depth: int, batch: int) -> float:
    # per layer the assembled L and U and their product (zuko) or the scattered triangles (nflows), kept
    # for the backward pass
    return 3.0 * depth * dim * dim


def _maf_memory(dim: int, depth: int, batch: int) -> float:
    # per transform a MADE D → h → h → 2D: its weights, masks, gradients, Adam's two moments and
    # time_step's snapshot (6 copies), and its activations (two hidden layers and 2D outputs, with their
    # gradients), on top of the D×D layer that the common estimate counts
    h = maf_hidden(dim)
    made = dim * h + h * h + 2 * h * dim
    return depth * (6.0 * made + 4.0 * batch * (2 * h + 2 * dim))


@dataclass(frozen=True)
class Peer:
    """A method built on another library: its registry entry and the package it needs."""

    name: str
    package: str
    flow_class: type[Flow]
    order: int
    cost: str
    summary: str
    memory: MemoryModel

    def spec(self) -> MethodSpec:
        return MethodSpec(
            self.name,
            self.flow_class,
            peer_direction,
            None,  # counted, not modelled
            order=self.order,
            cost=self.cost,
            summary=self.summary,
            memory=self.memory,
            peer=self.package,
        )


#: Every peer method, in display order (after relgrad's built-ins, before methods users register).
PEERS: tuple[Peer, ...] = (
    Peer(
        "zuko_lu",
        "zuko",
        ZukoLUFlow,
        60,
        "O(B·D² + D³)",
        "zuko LULinearTransform layers (W = P·L·U), σ between, Gaussian base; Euclidean gradient",
        _lu_memory,
    ),
    Peer(
        "nflows_lu",
        "nflows",
        NflowsLUFlow,
        70,
        "O(B·D² + D³)",
        "nflows LULinear layers (W = P·L·U), σ between, Gaussian base; Euclidean gradient",
        _lu_memory,
    ),
    Peer(
        "zuko_maf",
        "zuko",
        ZukoMAF,
        80,
        "O(B·D²)",
        "zuko MAF: depth affine autoregressive transforms, MADE 2 × max(D, 64) hidden; not a dense layer",
        _maf_memory,
    ),
)
PEER_NAMES: tuple[str, ...] = tuple(p.name for p in PEERS)


def installed(package: str) -> bool:
    """Whether ``package`` can be imported here (looked up, not imported)."""
    return importlib.util.find_spec(package) is not None


def missing_message(peer: Peer) -> str:
    return f"it needs the {peer.package} package: install the peers extra, {INSTALL_HINT}"


def register_peers() -> tuple[str, ...]:
    """Register every peer whose package is installed (once), note the others; the names registered now."""
    added = []
    for peer in PEERS:
        if peer.name in method_names():
            continue
        if installed(peer.package):
            register_method(peer.spec())
            added.append(peer.name)
        else:
            note_unavailable(peer.name, missing_message(peer))
    return tuple(added)


def installed_peers() -> tuple[str, ...]:
    """The peer methods registered here, in display order."""
    return tuple(name for name in method_names() if name in PEER_NAMES)


register_peers()

__all__ = [
    "INSTALL_HINT",
    "PEERS",
    "PEER_NAMES",
    "NflowsLUFlow",
    "Peer",
    "PeerFlow",
    "ZukoLUFlow",
    "ZukoMAF",
    "installed_peers",
    "register_peers",
]
