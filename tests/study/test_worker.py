"""A trial worker that SIGTERM reaches inside a weakref callback exits quietly (no 'Exception ignored')."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Ray's worker handler (raise SystemExit on SIGTERM), and a SIGTERM that arrives while the main thread
# runs a weakref callback: what a sweep's shutdown does to a worker collecting a finished trial thread.
SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time, weakref
    if sys.argv[1] == "hook":
        from study.worker import prepare_worker
        prepare_worker()
    def ray_handler(signum, frame):
        raise SystemExit(1)
    signal.signal(signal.SIGTERM, ray_handler)
    class Thing:
        pass
    thing = Thing()
    ref = weakref.ref(thing, lambda _: (os.kill(os.getpid(), signal.SIGTERM), time.sleep(0.2)))
    try:
        del thing  # the callback runs; the SIGTERM lands inside it
        time.sleep(5)  # without the hook the process is still here: the exit was swallowed
        print("still running")
    except SystemExit:
        print("exited")
        raise
    """
)


def _run(mode: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60, env=env, cwd=REPO
    )


def test_without_the_hook_python_prints_the_ignored_exit() -> None:
    result = _run("plain")
    assert "Exception ignored" in result.stderr and "SystemExit" in result.stderr
    assert "still running" in result.stdout


def test_with_the_hook_the_worker_exits_without_a_word() -> None:
    result = _run("hook")
    assert result.stderr == "" and result.stdout.strip() == "exited"
    assert result.returncode == 1  # Ray's exit code for a SIGTERM, as it meant it
