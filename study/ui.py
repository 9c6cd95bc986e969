"""``relgrad ui``: MLflow's UI on the project's store, announced only once it answers.

One server process: ``mlflow server --workers 1`` (MLflow's default is 4 uvicorn workers) with job
execution off (``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``; by default it starts a job runner and a
pool of huey consumers; set the variable yourself to have them). ``mlflow server`` itself stays as the
uvicorn worker's parent, so the command runs three processes: this one, MLflow's launcher, the server.
They live in their own process group: Ctrl-C or SIGTERM to this command stops the whole group (SIGKILL
after a grace period). The URL is printed when ``/health`` answers; it opens the experiment's runs in
MLflow's machine-learning view, or with ``--sweep`` the saved chart view of that sweep's parent run
(:mod:`study.mlflow_view`). This process finds the experiment and the sweep through the server's REST
API, so it never loads MLflow itself. The server's own output goes to a log file beside the store.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Any

from analysis.schema import ROLE_PARENT, TAG_ROLE, TAG_SWEEP
from study.mlflow_view import experiment_url, sweep_view_tag, sweep_view_url
from study.parsing import EXIT_FAILED, EXIT_OK, EXIT_USAGE, ConfigError, check_sweep_name
from study.store import default_artifact_root, sqlite_path

#: Longest wait for ``/health`` (a cold start on 2 busy cores can take tens of seconds).
READY_TIMEOUT_S = 180.0
#: Grace period between SIGTERM and SIGKILL of the server's process group.
STOP_GRACE_S = 10.0
JOB_EXECUTION_ENV = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"


class _Stop(Exception):
    """SIGTERM reached this process."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def check_port(host: str, port: int) -> None:
    """ConfigError (exit 2, one line) when ``host:port`` cannot be bound, e.g. another UI holds it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # as the server will: a port whose last listener just closed (TIME_WAIT) is free
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConfigError(
                f"--port {port}: cannot listen on {host}:{port} ({reason}); is another UI running? "
                "Choose another port with --port"
            ) from None


def healthy(base: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=timeout_s) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def server_command(uri: str, host: str, port: int) -> list[str]:
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri]
    command += ["--host", host, "--port", str(port), "--workers", "1"]
    artifacts = default_artifact_root(uri)
    return command + (["--default-artifact-root", artifacts] if artifacts else [])


def _stop_group(proc: subprocess.Popen) -> int:
    """SIGTERM to the server's process group, SIGKILL after :data:`STOP_GRACE_S`; its exit code."""
    for sig, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, STOP_GRACE_S)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            return int(proc.wait(timeout=wait_s))
    return int(proc.returncode or 0)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def _api(base: str, endpoint: str, payload: dict[str, Any] | None = None, **query: str) -> dict[str, Any]:
    """One call of MLflow's REST API (``/api/2.0/mlflow/<endpoint>``): GET with ``query``, POST JSON."""
    url = f"{base}/api/2.0/mlflow/{endpoint}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return dict(json.loads(response.read() or b"{}"))
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return {}
        raise


def view_url(base: str, experiment: str, sweep: str | None) -> str:
    """The URL to open: the experiment (ML view), or the saved chart view of ``sweep``'s parent run."""
    found = _api(base, "experiments/get-by-name", experiment_name=experiment).get("experiment")
    if not found:
        raise ConfigError(f"--experiment {experiment}: no such experiment in this store; run a sweep first")
    experiment_id = str(found["experiment_id"])
    if sweep is None:
        return experiment_url(base, experiment_id)
    search = {
        "experiment_ids": [experiment_id],
        "filter": f"tags.{TAG_SWEEP} = '{sweep}' and tags.{TAG_ROLE} = '{ROLE_PARENT}'",
        "order_by": ["attributes.start_time DESC"],
        "max_results": 1,
    }
    runs = _api(base, "runs/search", search).get("runs", [])
    if not runs:
        raise ConfigError(f"--sweep {sweep}: no such sweep in experiment {experiment!r}")
    run = runs[0]
    metrics = [m["key"] for m in run.get("data", {}).get("metrics", [])]
    key, value = sweep_view_tag(sweep, str(run["info"]["run_id"]), metrics)
    _api(base, "experiments/set-experiment-tag", {"experiment_id": experiment_id, "key": key, "value": value})
    return sweep_view_url(base, experiment_id, sweep)


def open_ui(uri: str, host: str, port: int, experiment: str, sweep: str | None = None) -> int:
    """Serve the store at ``uri`` until Ctrl-C / SIGTERM; the exit code (a server store is only named)."""
    if sweep is not None:
        check_sweep_name(sweep)
    if uri.startswith(("http://", "https://")):
        print(f"MLflow UI: {view_url(uri.rstrip('/'), experiment, sweep)}")
        return EXIT_OK
    path = sqlite_path(uri)
    if path is not None and path.is_absolute() and not path.exists():
        raise ConfigError(f"no MLflow store at {path} yet; run a sweep first (relgrad scaling)")
    check_port(host, port)
    base = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    log = (path.parent if path is not None else Path.cwd()) / "mlflow-ui.log"
    env = {**os.environ}
    env.setdefault(JOB_EXECUTION_ENV, "false")
    started = time.monotonic()
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            server_command(uri, host, port),
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own process group: stopped as one
        )
    try:
        if not _wait_ready(proc, base, log, started):
            return EXIT_FAILED
        try:
            target = view_url(base, experiment, sweep)
        except ConfigError as exc:
            print(f"relgrad: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(f"MLflow UI ready in {time.monotonic() - started:.1f} s: {target}", flush=True)
        print(f"(store {uri}; server log {log}; Ctrl-C to stop)", flush=True)
        code = proc.wait()
        print(f"relgrad: the MLflow server stopped (exit code {code}); its log: {log}", file=sys.stderr)
        return EXIT_FAILED
    except (KeyboardInterrupt, _Stop):
        return EXIT_OK
    finally:
        if proc.poll() is None:
            _stop_group(proc)
        signal.signal(signal.SIGTERM, previous)


def _wait_ready(proc: subprocess.Popen, base: str, log: Path, started: float) -> bool:
    """Poll ``/health`` until it answers (True), the server exits or the wait times out (False)."""
    while not healthy(base):
        if proc.poll() is not None:
            print(
                f"relgrad: the MLflow server exited with code {proc.returncode}; its log ({log}) "
                f"ends:\n{_tail(log)}",
                file=sys.stderr,
            )
            return False
        if time.monotonic() - started > READY_TIMEOUT_S:
            print(
                f"relgrad: the MLflow server did not answer within {READY_TIMEOUT_S:.0f} s; log: {log}",
                file=sys.stderr,
            )
            return False
        time.sleep(0.2)
    return True
