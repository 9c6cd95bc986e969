"""Start or join Ray for a sweep: embedded Ray on loopback only, or the user's cluster.

Embedded Ray (no ``--address``) is a one-machine cluster: its GCS, raylet, workers, runtime-env agent
and the driver's own gRPC server must not listen on the machine's network address, where anyone who can
reach it could submit code (``RAY_AUTH_MODE=disabled`` turns Ray's token check off). Ray picks the
node's IP through ``ray.util.get_node_ip_address()``, which is the loopback address exactly when the
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` switch is off; with the node IP at 127.0.0.1 every Ray gRPC server
binds 127.0.0.1 instead of ``*``. Ray reads the switch once, when it is imported, so this module sets it
(unless the user did) and must be imported before ``ray``: ``study.cli`` imports it first.

A cluster (``--address auto`` or ``host:port``) is the user's deliberate choice: it is joined as is.
Ray's authentication is left at Ray's default; only the user turns it off (``RAY_AUTH_MODE``).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from study.parsing import ConfigError, first_line

LOOPBACK = "127.0.0.1"
#: Ray's switch for "this machine may be part of a multi-host cluster" (read when ray is imported).
CLUSTER_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"

if "ray" not in sys.modules:
    os.environ.setdefault(CLUSTER_SWITCH, "0")


def embedded_is_loopback() -> bool:
    """Whether an embedded Ray started from this process would bind loopback only."""
    import ray.util

    return bool(ray.util.get_node_ip_address() == LOOPBACK)


#: Whether this process started (or joined) Ray through :func:`start_ray` (then it also stops it).
_STARTED: list[bool] = []


def start_ray(address: str | None, *, num_cpus: int | None = None, num_gpus: int | None = None) -> None:
    """Start embedded Ray bound to 127.0.0.1 (``address=None``) or connect to the cluster at ``address``.

    An already-initialised Ray (tests, notebooks) is reused. Raises ConfigError with one line when Ray
    cannot start, the cluster cannot be reached, or embedded Ray would listen beyond loopback.
    """
    import ray

    if ray.is_initialized():
        return
    if not address and os.environ.get(CLUSTER_SWITCH) != "1" and not embedded_is_loopback():
        raise ConfigError(
            f"embedded Ray would listen on {ray.util.get_node_ip_address()}, not {LOOPBACK}: ray was "
            f"imported before study.ray_runtime (set {CLUSTER_SWITCH}=0 before importing ray)"
        )
    try:
        if address:
            # the cluster's workers import relgrad_core afresh: hand them the user's plugin modules
            plugins = os.environ.get("RELGRAD_PLUGINS")
            runtime_env = {"env_vars": {"RELGRAD_PLUGINS": plugins}} if plugins else None
            ray.init(address=address, log_to_driver=True, runtime_env=runtime_env)
            _STARTED.append(True)
            return
        # With the switch at "1" the user asked for an outward-facing node: their choice, as --address.
        # logging_level: no "Started a local Ray instance." on the sweep's console (warnings still show)
        ray.init(
            address="local",
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            include_dashboard=False,
            logging_level=logging.WARNING,
        )
        _STARTED.append(True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "local"
        raise ConfigError(f"cannot start or reach Ray at {where!r}: {first_line(exc)}") from None


def stop_started_ray() -> None:
    """Shut down the Ray this process started, with Ctrl-C and SIGTERM ignored meanwhile (the command has
    already ended; a second Ctrl-C would otherwise land in Ray's own shutdown at interpreter exit, which
    it leaves with a traceback and a segmentation fault)."""
    if not _STARTED or threading.current_thread() is not threading.main_thread():
        return
    import ray

    _STARTED.clear()
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        ray.shutdown()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
