"""Set-up of a Ray worker process that runs trials, so that it says nothing the trial's run records.

``fit``'s warning that the epoch cap stopped a run still improving is for interactive use: a trial
records it in its ``status_reason`` (``stopped by epochs (still improving)``), and Ray would forward it
to the sweep's console once per trial. It is filtered in the worker (:func:`prepare_worker`).

A SIGTERM at shutdown ends the worker without a traceback:

Ray's workers handle SIGTERM by raising ``SystemExit`` in the main thread, wherever it is. When the
sweep shuts its workers down, that main thread is often collecting the trial's finished threads: the
signal then lands inside a weakref callback (``threading._dangling`` is a ``WeakSet``), where Python
cannot propagate an exception. It prints ``Exception ignored in: <function WeakSet…_remove>``,
``SystemExit: 1`` through :func:`sys.unraisablehook` (which Ray forwards to the driver's console) and
the worker carries on until it is killed. The hook installed here takes exactly that case: it prints
nothing and delivers the SIGTERM again, so that Ray's handler runs at the next ordinary bytecode and
the worker exits the way Ray meant it to. Every other unraisable exception goes to the previous hook.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import warnings
from typing import Any

#: How long after the swallowed exit the SIGTERM is sent again.
RESEND_DELAY_S = 0.05
_INSTALLED: list[Any] = []  # the previous hook, once installed (one per process)


def _hook(unraisable: Any) -> None:
    if isinstance(unraisable.exc_value, SystemExit):
        # The exit Ray asked for, delivered again from another thread a moment later, once the main
        # thread has left the callback (a signal raised here would run its handler here again).
        resend = threading.Timer(RESEND_DELAY_S, os.kill, (os.getpid(), signal.SIGTERM))
        resend.daemon = True
        resend.start()
        return
    _INSTALLED[0](unraisable)


def prepare_worker() -> None:
    """What every trial does first in its worker (idempotent)."""
    warnings.filterwarnings("ignore", message="fit stopped at the epoch cap", category=UserWarning)
    quiet_exit_on_sigterm()


def quiet_exit_on_sigterm() -> None:
    """Install the hook in this process (idempotent; called by each trial in its worker)."""
    if _INSTALLED:
        return
    _INSTALLED.append(sys.unraisablehook)
    sys.unraisablehook = _hook
