"""SIGTERM handled like Ctrl-C: what a batch scheduler, ``timeout`` or a container stop sends must end a run
as cleanly as a user's interrupt, resumable, with exit code 143 (128 + SIGTERM).

Two handlers stand in the way by default. ``ray.init`` installs a Python one that calls ``sys.exit``, and
Ray's core worker then installs its C++ failure-signal handler over it, which prints a stack dump
(``*** SIGTERM received ... PC: @ ...``) and aborts: exit 134, the sweep's runs left RUNNING. So
:func:`install` is called again once Ray is up (``signal.signal`` replaces the handler at the C level).

The handler does what the first Ctrl-C does. While ``Tuner.fit`` runs (:func:`tune_fit`) it raises
SIGUSR1, which Tune treats exactly as its first SIGINT: it stops the trials (each records itself
``interrupted``), saves the experiment and returns, so ``--resume`` continues it. Anywhere else it raises
``KeyboardInterrupt``, as Python's own SIGINT handler does. A second SIGTERM always raises
``KeyboardInterrupt``, like a second Ctrl-C.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

#: The exit code of a run ended by SIGTERM (the shell's 128 + 15): interrupted, and resumable.
EXIT_TERMINATED = 128 + signal.SIGTERM

_state = {"received": 0, "fitting": False}


def terminated() -> bool:
    """Whether this process received SIGTERM since :func:`handled` began."""
    return _state["received"] > 0


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _state["received"] += 1
    usr1 = getattr(signal, "SIGUSR1", None)
    if (
        _state["received"] == 1
        and _state["fitting"]
        and usr1 is not None
        and callable(signal.getsignal(usr1))
    ):
        signal.raise_signal(usr1)  # Tune's "stop like the first Ctrl-C"
        return
    raise KeyboardInterrupt


def install() -> None:
    """(Re)install the handler: at the start of a command, and again after ``ray.init`` replaced it."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """SIGTERM handled like Ctrl-C for the duration of one command; the previous handler restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    _state.update(received=0, fitting=False)
    install()
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def tune_fit() -> Iterator[None]:
    """Mark the span of ``Tuner.fit``: a SIGTERM then stops Tune the way its first Ctrl-C does.

    Tune installs its SIGUSR1 handler when ``fit`` starts and leaves it behind, bound to that run: it is
    cleared before and after, so that a SIGTERM never reaches a finished run's handler.
    """
    usr1 = getattr(signal, "SIGUSR1", None)
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(usr1) if usr1 is not None and main else None
    if previous is not None:
        signal.signal(usr1, signal.SIG_DFL)  # never raised as such: every sender checks for a handler
    _state["fitting"] = True
    try:
        yield
    finally:
        _state["fitting"] = False
        if previous is not None:
            signal.signal(usr1, previous)
