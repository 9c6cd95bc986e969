"""Fault injection against real parts on loopback: Ctrl-C (twice) mid-trial, kill -9 of the driver,
bad sweep names, a sweep whose every trial fails, and an MLflow server outage. After each, the store
must hold one run per trial with the right status, the exit code must say what happened, ``--resume``
must finish the sweep in the same runs, and ``analysis.loading.load_runs`` must agree."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from analysis.loading import load_runs
from analysis.schema import STATUS_FAILED, STATUS_INTERRUPTED, STATUS_OK
from study.cli import main
from tests.study.conftest import runs_of, write_preset

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

#: Trials that run long enough to be cut mid-training (each stops after its train budget anyway).
LONG = {
    "methods": ["relative"],
    "dims": [4, 8],
    "train": {"epochs": 20, "steps_per_epoch": 1500, "time_budget_s": 4},
    "resources": {"max_concurrent": 1, "max_failures": 0},
}


def _env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
        **extra,
    }


def _children(uri: str, sweep: str) -> list:
    return [r for r in runs_of(uri, sweep) if r.data.tags.get("role") != "parent"]


def _parent(uri: str, sweep: str):
    (parent,) = [r for r in runs_of(uri, sweep) if r.data.tags.get("role") == "parent"]
    return parent


def _key(run) -> tuple[str, int]:
    return run.data.params["method"], int(run.data.params["dim"])


def _cli(preset: str, name: str, store: dict[str, str], *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "study.cli",
        "scaling",
        "--preset",
        preset,
        "--name",
        name,
        "--tracking-uri",
        store["uri"],
        "--storage-path",
        store["storage"],
        "--num-cpus",
        "1",
        *extra,
    ]


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen, timeout_s: float, what: str) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline and proc.poll() is None:
        if condition():
            return
        time.sleep(0.3)
    pytest.fail(f"{what} did not happen (driver exit code {proc.poll()})")


def _mid_trial(uri: str, sweep: str, dim: int | None = None) -> Callable[[], bool]:
    """A child run (at ``dim`` if given) that is RUNNING and has logged at least one evaluation."""

    def check() -> bool:
        return any(
            r.info.status == "RUNNING" and "val_ll" in r.data.metrics and dim in (None, _key(r)[1])
            for r in _children(uri, sweep)
        )

    return check


@pytest.fixture
def session_procs() -> Iterator[list[subprocess.Popen]]:
    """Drivers started in their own session: whatever is left of them is killed at the end."""
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # its Ray processes, if any outlived it


def _start(command: list[str], cwd: Path, procs: list[subprocess.Popen], **env: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env=_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    procs.append(proc)
    return proc


def _descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in found:
                found.add(child)
                frontier.append(child)
    return found


def _listening(pids: set[int]) -> list[tuple[str, str]]:
    """(local address, process name) of every listening TCP socket of ``pids``."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    sockets = []
    for line in out.splitlines():
        fields = line.split()
        for name, pid in re.findall(r'\("([^"]+)",pid=(\d+)', line):
            if int(pid) in pids:
                sockets.append((fields[3], name))
    return sockets


def _is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "::1", "::ffff:127.0.0.1") or host.startswith("127.")


def _resume(name: str, store: dict[str, str]) -> int:
    args = ["scaling", "--name", name, "--resume", "--tracking-uri", store["uri"]]
    return main([*args, "--storage-path", store["storage"]])


def _assert_finished(store: dict[str, str], name: str, expected: int) -> list:
    children = _children(store["uri"], name)
    assert len(children) == len({_key(r) for r in children}) == expected  # one run per trial
    assert all(r.info.status == "FINISHED" and r.data.tags["status"] == STATUS_OK for r in children)
    assert all("test_ll" in r.data.metrics for r in children)  # really trained to the end
    assert _parent(store["uri"], name).info.status == "FINISHED"
    runs = load_runs(name, tracking_uri=store["uri"])
    assert len(runs) == expected and set(runs["status"]) == {STATUS_OK}
    return children


# --------------------------------------------------------------------------------------------
# Findings 1 and 2: Ctrl-C twice mid-trial, on an embedded Ray that listens on loopback only
# --------------------------------------------------------------------------------------------
def test_double_ctrl_c_mid_trial_is_interrupted_then_resumed_on_loopback_ray(
    ray_session, store: dict[str, str], tmp_path: Path, session_procs: list
) -> None:
    preset = write_preset(tmp_path, scaling=LONG)
    proc = _start(_cli(preset, "cut", store), tmp_path, session_procs)
    _wait_for(lambda: bool(_children(store["uri"], "cut")), proc, 240, "a trial starting")
    # Ray is up and a worker runs the trial: every listening socket of the driver's tree is loopback
    sockets = _listening(_descendants(proc.pid))
    assert any(name == "gcs_server" for _, name in sockets), sockets  # Ray's own servers were seen
    assert all(_is_loopback(address) for address, _ in sockets), sockets

    _wait_for(_mid_trial(store["uri"], "cut"), proc, 240, "a trial evaluating")
    proc.send_signal(signal.SIGINT)  # what Ctrl-C does
    time.sleep(1.0)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # and again, impatiently
    output, _ = proc.communicate(timeout=180)
    assert proc.returncode == 130, output[-3000:]
    assert "relgrad scaling --resume --name cut --storage-path " in output
    cut = [r for r in _children(store["uri"], "cut") if "test_ll" not in r.data.metrics]
    assert cut and all(r.data.tags["status"] == STATUS_INTERRUPTED for r in cut)  # never `ok`
    assert all(r.info.status != "RUNNING" for r in _children(store["uri"], "cut"))
    assert _parent(store["uri"], "cut").info.status == "KILLED"

    assert _resume("cut", store) == 0
    children = _assert_finished(store, "cut", 2)
    again = {r.info.run_id for r in cut}
    assert all(r.data.tags["attempts"] == "2" for r in children if r.info.run_id in again)


# --------------------------------------------------------------------------------------------
# Finding 3: kill -9 of the driver, then --resume
# --------------------------------------------------------------------------------------------
def test_killed_driver_then_resume_duplicates_nothing(
    ray_session, store: dict[str, str], tmp_path: Path, session_procs: list
) -> None:
    preset = write_preset(tmp_path, scaling=LONG)
    # Tune checkpoints its experiment rarely: the second trial starts after the last checkpoint, so on
    # resume Tune knows nothing of it and the grid suggests its point again under a new trial id.
    rare = {"TUNE_GLOBAL_CHECKPOINT_S": "3600"}
    proc = _start(_cli(preset, "k9", store), tmp_path, session_procs, **rare)
    _wait_for(_mid_trial(store["uri"], "k9", dim=8), proc, 240, "the second trial evaluating")
    proc.kill()
    proc.wait(timeout=30)
    os.killpg(proc.pid, signal.SIGKILL)  # what a dead machine or OOM killer leaves: no Ray either
    assert any(r.info.status == "RUNNING" for r in _children(store["uri"], "k9"))

    assert _resume("k9", store) == 0
    _assert_finished(store, "k9", 2)


# --------------------------------------------------------------------------------------------
# Finding 5: names that break quoting or escape the results folder
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["o'b", "../escape"])
def test_bad_names_exit_2_before_anything_runs(
    ray_session, store: dict[str, str], tmp_path: Path, capsys, name: str
) -> None:
    preset = write_preset(tmp_path)
    args = ["scaling", "--preset", preset, "--name", name, "--tracking-uri", store["uri"]]
    assert main([*args, "--storage-path", store["storage"]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "name" in err[0]
    assert not (tmp_path / "escape").exists() and not Path(store["storage"]).with_name("escape").exists()
    assert runs_of(store["uri"], name) == []


# --------------------------------------------------------------------------------------------
# Finding 6: every trial failed → non-zero exit; resume re-runs them in their runs
# --------------------------------------------------------------------------------------------
def test_all_trials_failed_exits_1_and_resume_reruns_them(
    ray_session, store: dict[str, str], tmp_path: Path, capsys
) -> None:
    marker = tmp_path / "killed-once"
    preset = write_preset(
        tmp_path,
        scaling={
            "methods": ["relative"],
            "dims": [4],
            "inject_worker_kill": str(marker),
            "resources": {"max_failures": 0},
        },
    )
    args = ["scaling", "--preset", preset, "--name", "fail", "--tracking-uri", store["uri"]]
    assert main([*args, "--storage-path", store["storage"]]) == 1
    assert "failed" in capsys.readouterr().out
    (run,) = _children(store["uri"], "fail")
    assert run.data.tags["status"] == STATUS_FAILED and run.info.status == "FAILED"
    assert run.data.tags["status_reason"].startswith(("RayActorError", "ActorDiedError"))  # Tune's own error
    assert set(load_runs("fail", tracking_uri=store["uri"])["status"]) == {STATUS_FAILED}

    assert _resume("fail", store) == 0  # the marker exists: the worker is not killed again
    (again,) = _assert_finished(store, "fail", 1)
    assert again.info.run_id == run.info.run_id and again.data.tags["attempts"] == "2"


# --------------------------------------------------------------------------------------------
# Finding 7: the MLflow server goes away for longer than the client retries
# --------------------------------------------------------------------------------------------
class Relay:
    """A loopback TCP relay in front of the tracking server that can go down: while down it cuts
    every open connection and resets new ones, as a server outage does to its clients."""

    def __init__(self, upstream: int) -> None:
        self.upstream, self.up = upstream, True
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            server = socket.create_connection(("127.0.0.1", self.upstream))
            with self.lock:
                self.open |= {client, server}
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def set_up(self, up: bool) -> None:
        self.up = up
        if not up:
            with self.lock:
                for end in self.open:
                    with contextlib.suppress(OSError):
                        end.shutdown(socket.SHUT_RDWR)
                self.open.clear()

    def close(self) -> None:
        self.set_up(False)
        self.listener.close()


def test_tracking_outage_ends_the_sweep_cleanly_and_resume_finishes_it(
    ray_session, mlflow_server: int, tmp_path: Path, session_procs: list
) -> None:
    relay = Relay(mlflow_server)  # the session's server, reached only through the relay
    try:
        store = {"uri": f"http://127.0.0.1:{relay.port}", "storage": str(tmp_path / "ray_results")}
        preset = write_preset(tmp_path, scaling=LONG)
        fast_fail = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
        proc = _start(_cli(preset, "outage", store), tmp_path, session_procs, **fast_fail)
        _wait_for(_mid_trial(store["uri"], "outage"), proc, 240, "a trial evaluating")
        relay.set_up(False)  # the server is gone for longer than the client retries
        output, _ = proc.communicate(timeout=240)
        assert proc.returncode == 130, output[-3000:]
        # Tune prints the trials' own errors; the driver itself must not crash in its callbacks
        assert "on_trial_error" not in output and "MlflowFinaliser" not in output, output[-3000:]
        assert "Traceback" not in output.split("sweep outage:", 1)[1], output[-3000:]
        assert (
            "relgrad scaling --resume --name outage --tracking-uri http" in output
            and "tracking store" in output
        )

        relay.set_up(True)  # the server is back
        assert _resume("outage", store) == 0
        _assert_finished(store, "outage", 2)
    finally:
        relay.close()
