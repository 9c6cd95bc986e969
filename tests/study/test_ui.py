"""``relgrad ui``: ready when it says so, one line on a busy port, nothing left after SIGTERM; its URLs."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from mlflow.tracking import MlflowClient

from study.cli import main, ui_hint
from study.mlflow_view import VIEW_TAG_PREFIX, experiment_url, sweep_view_state, sweep_view_url
from study.parsing import ConfigError
from study.tracking import create_parent, ensure_experiment, log_metrics

REPO = Path(__file__).resolve().parents[2]
READY_WAIT_S = 240  # a cold MLflow server on 2 busy cores; the test fails rather than hangs


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc: no psutil here)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _store(tmp_path: Path) -> tuple[str, str, str]:
    uri = f"sqlite:///{(tmp_path / 'runs' / 'mlflow.db').as_posix()}"
    experiment_id = ensure_experiment(uri)
    parent = create_parent(uri, experiment_id, "uisweep", "scaling", {"methods": "relative,ordinary"})
    for method, seconds in (("relative", 1e-3), ("ordinary", 2e-3)):
        for dim in (64, 128):
            log_metrics(uri, parent, {f"step_s/{method}": seconds * dim / 64}, step=dim)
    return uri, experiment_id, parent


def test_urls_open_the_machine_learning_view() -> None:
    url = experiment_url("http://127.0.0.1:5000", "7")
    assert url.startswith("http://127.0.0.1:5000/#/experiments/7/runs?")
    assert parse_qs(urlsplit(url).fragment.split("?", 1)[1]) == {"workflowType": ["machine_learning"]}
    view = parse_qs(urlsplit(sweep_view_url("http://h:1", "7", "s1")).fragment.split("?", 1)[1])
    assert view == {
        "viewStateShareKey": ["relgrad-s1"],
        "compareRunsMode": ["CHART"],
        "workflowType": ["machine_learning"],
    }


def test_the_saved_view_charts_each_curve_family() -> None:
    keys = ["step_s/relative", "step_s/ordinary", "peak_mem_mb/relative", "val_ll"]
    state = sweep_view_state("s1", "abc123", keys)
    assert state["searchFilter"] == "attributes.run_id = 'abc123'"
    cards = {c["uuid"]: c for c in state["compareRunCharts"]}
    step = cards["relgrad-step-s"]
    assert step["type"] == "LINE" and step["xAxisKey"] == "step"
    assert step["selectedMetricKeys"] == ["step_s/ordinary", "step_s/relative"]
    assert step["scaleType"] == step["xAxisScaleType"] == "log"
    assert cards["relgrad-peak-mem"]["selectedMetricKeys"] == ["peak_mem_mb/relative"]
    assert "relgrad-test-ll" not in cards  # no test LL curve on this run: no empty chart
    assert state["compareRunSections"][0]["uuid"] == step["metricSectionId"]
    with_ll = sweep_view_state("s1", "abc123", [*keys, "test_ll/relative", "gaussian_test_ll"])
    ll = next(c for c in with_ll["compareRunCharts"] if c["uuid"] == "relgrad-test-ll")
    assert (
        ll["selectedMetricKeys"] == ["test_ll/relative", "gaussian_test_ll"] and ll["scaleType"] == "linear"
    )


def test_the_hint_carries_the_store_it_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    default = f"sqlite:///{(tmp_path / 'runs' / 'mlflow.db').as_posix()}"
    assert ui_hint(default, "relgrad", "s1").endswith(": relgrad ui --sweep s1")
    other = "sqlite:////data/my store/mlflow.db"
    assert ui_hint(other, "mine", "s1").endswith(
        ": relgrad ui --sweep s1 --tracking-uri 'sqlite:////data/my store/mlflow.db' --experiment mine"
    )


def test_ui_help_lists_only_what_ui_uses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["ui", "--help"])
    text = capsys.readouterr().out
    for flag in ("--tracking-uri", "--experiment", "--sweep", "--host", "--port"):
        assert flag in text
    for flag in ("--name", "--address", "--num-cpus", "--storage-path", "--preset"):
        assert flag not in text


def test_serves_when_ready_refuses_a_busy_port_and_leaves_nothing_on_sigterm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri, experiment_id, parent = _store(tmp_path)
    port = _free_port()
    command = [sys.executable, "-m", "study.cli", "ui", "--tracking-uri", uri, "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([*command, "--sweep", "uisweep"], stdout=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        first = lines.get(timeout=READY_WAIT_S)
        base = f"http://127.0.0.1:{port}"
        # the URL is printed once the server answers: it answers at once
        with urllib.request.urlopen(f"{base}/health", timeout=5) as response:
            assert response.status == 200
        assert first.startswith("MLflow UI ready in ") and first.strip().endswith(
            sweep_view_url(base, experiment_id, "uisweep")
        )
        tags = MlflowClient(uri).get_experiment(experiment_id).tags
        envelope = json.loads(tags[f"{VIEW_TAG_PREFIX}relgrad-uisweep"])
        state = json.loads(envelope["state"])
        assert state["searchFilter"] == f"attributes.run_id = '{parent}'"
        assert state["compareRunCharts"][0]["selectedMetricKeys"] == ["step_s/ordinary", "step_s/relative"]
        # one server process (one uvicorn worker, no job runner), under MLflow's launcher
        below = _descendants(proc.pid)
        assert len(below) == 2, below
        # a second UI on the same port: one line, exit 2, before any server starts
        capsys.readouterr()
        assert main(["ui", "--tracking-uri", uri, "--port", str(port)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"relgrad: error: --port {port}: cannot listen") and len(err.splitlines()) == 1
        # a sweep the store lacks: said while the server runs
        from study.ui import view_url

        with pytest.raises(ConfigError, match="--sweep nosuch: no such sweep"):
            view_url(base, "relgrad", "nosuch")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in below) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in below if _alive(pid)]
