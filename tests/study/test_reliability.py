"""Fault tolerance against real parts: a killed worker, an interrupted sweep resumed, a 2-node
Ray cluster on loopback, and a real MLflow tracking server on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from study.cli import main
from tests.study.conftest import runs_of, write_preset

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _children(uri: str, sweep: str) -> list:
    return [r for r in runs_of(uri, sweep) if r.data.tags.get("role") != "parent"]


def _key(run) -> tuple[str, int, float]:
    p = run.data.params
    return p["method"], int(p["dim"]), float(p["lr"])


def _env() -> dict[str, str]:
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO)}


def test_killed_worker_is_retried_and_the_sweep_completes(
    ray_session, store: dict[str, str], tmp_path: Path
) -> None:
    marker = tmp_path / "killed-once"
    preset = write_preset(tmp_path, scaling={"inject_worker_kill": str(marker)})
    code = main(
        [
            "scaling",
            "--preset",
            preset,
            "--name",
            "kill",
            "--tracking-uri",
            store["uri"],
            "--storage-path",
            store["storage"],
        ]
    )
    assert code == 0
    assert marker.exists()  # a worker really was SIGKILLed
    children = _children(store["uri"], "kill")
    assert len(children) == len({_key(r) for r in children}) == 4
    assert all(r.data.tags["status"] == "ok" for r in children)
    retried = [r for r in children if r.data.tags["attempts"] == "2"]
    assert len(retried) == 1  # the killed trial ran again, in the same MLflow run
    assert retried[0].data.tags["pid"] != marker.read_text()


def test_interrupt_then_resume_runs_nothing_twice(ray_session, store: dict[str, str], tmp_path: Path) -> None:
    preset = write_preset(
        tmp_path,
        scaling={
            "dims": [4, 8, 16],
            "train": {"epochs": 3, "steps_per_epoch": 300},
            "resources": {"max_concurrent": 1},
        },
    )
    command = [
        sys.executable,
        "-m",
        "study.cli",
        "scaling",
        "--preset",
        preset,
        "--name",
        "res",
        "--tracking-uri",
        store["uri"],
        "--storage-path",
        store["storage"],
        "--num-cpus",
        "1",
    ]
    proc = subprocess.Popen(
        command, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.time() + 240
        finished: list = []
        while time.time() < deadline and proc.poll() is None:
            finished = [r for r in _children(store["uri"], "res") if r.info.status == "FINISHED"]
            if finished:
                break
            time.sleep(0.5)
        assert finished, "no trial finished before the deadline"
        proc.send_signal(signal.SIGINT)  # what Ctrl-C does
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output[-3000:]
    assert "--resume" in output
    before = {
        r.info.run_id: r.info.end_time for r in _children(store["uri"], "res") if r.info.status == "FINISHED"
    }
    assert 0 < len(before) < 6
    # a trial cut by the interrupt is recorded as such, never as a truncated `ok`
    for run in _children(store["uri"], "res"):
        assert run.info.status != "RUNNING"
        assert run.data.tags["status"] in ("ok", "interrupted")
        assert (run.data.tags["status"] == "ok") == ("test_ll" in run.data.metrics)

    code = main(
        [
            "scaling",
            "--name",
            "res",
            "--resume",
            "--tracking-uri",
            store["uri"],
            "--storage-path",
            store["storage"],
        ]
    )
    assert code == 0
    children = _children(store["uri"], "res")
    assert len(children) == len({_key(r) for r in children}) == 6  # nothing lost or duplicated
    assert all(r.data.tags["status"] == "ok" for r in children)
    after = {r.info.run_id: r for r in children}
    for run_id, end_time in before.items():  # finished trials were not run again
        assert after[run_id].info.end_time == end_time
        assert after[run_id].data.tags["attempts"] == "1"
    parents = [r for r in runs_of(store["uri"], "res") if r.data.tags["role"] == "parent"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    # the parent's curves went on where the first driver left them: each D once, every trial there
    client = MlflowClient(store["uri"])
    for method in ("relative", "ordinary"):
        history = client.get_metric_history(parents[0].info.run_id, f"step_s/{method}")
        assert sorted(m.step for m in history) == [4, 8, 16], [(m.step, m.value) for m in history]
        timed = [r for r in children if r.data.params["method"] == method]
        assert {m.step: m.value for m in history} == {
            int(r.data.params["dim"]): r.data.metrics["sec_per_iter_min"] for r in timed
        }


CLUSTER_SCRIPT = textwrap.dedent(
    """
    import sys
    import ray
    from ray.cluster_utils import Cluster
    from study.cli import main

    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1"})
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    try:
        code = main(sys.argv[1:] + ["--address", cluster.address])
    finally:
        ray.shutdown()
        cluster.shutdown()
    sys.exit(code)
    """
)


def test_two_node_cluster_on_loopback(store: dict[str, str], tmp_path: Path) -> None:
    script = tmp_path / "cluster_sweep.py"
    script.write_text(CLUSTER_SCRIPT)
    preset = write_preset(tmp_path, scaling={"train": {"epochs": 2, "steps_per_epoch": 200}})
    # Ray rewrites 127.0.0.1 to the machine's outward IP on Linux; this switch keeps every node,
    # the GCS and the driver on loopback (two real raylets, one machine).
    env = {**_env(), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    out = subprocess.run(
        [
            sys.executable,
            str(script),
            "scaling",
            "--preset",
            preset,
            "--name",
            "two",
            "--tracking-uri",
            store["uri"],
            "--storage-path",
            store["storage"],
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    children = _children(store["uri"], "two")
    assert len(children) == 4 and all(r.data.tags["status"] == "ok" for r in children)
    assert len({r.data.tags["node_id"] for r in children}) == 2  # trials ran on both nodes


def test_sweep_against_a_real_mlflow_server(ray_session, mlflow_server: int, tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{mlflow_server}"
    code = main(
        [
            "scaling",
            "--preset",
            "smoke",
            "--methods",
            "relative",
            "--name",
            "srv",
            "--tracking-uri",
            uri,
            "--storage-path",
            str(tmp_path / "ray_results"),
        ]
    )
    assert code == 0
    children = _children(uri, "srv")
    assert sorted(int(r.data.params["dim"]) for r in children) == [4, 8]
    assert all("sec_per_iter" in r.data.metrics for r in children)
