"""Shared fixtures: one embedded Ray (2 CPUs) per test session, temporary MLflow stores."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import study.ray_runtime  # noqa: F401  (before anything imports ray: keeps embedded Ray on loopback)

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One local Ray instance for every in-process sweep of the session (start-up is slow).

    Started like the CLI's embedded Ray: bound to loopback, since tests run with auth disabled.
    """
    import ray

    from study.ray_runtime import start_ray

    start_ray(None, num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """One real MLflow tracking server on loopback for the session (start-up takes seconds); yields its
    port. Tests share it under distinct sweep names; one that needs an outage puts a relay in front."""
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    root = tmp_path_factory.mktemp("mlflow-server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--backend-store-uri", f"sqlite:///{(root / 'server.db').as_posix()}"]
    command += ["--default-artifact-root", str(root / "artifacts"), "--workers", "1"]
    server = subprocess.Popen(
        command,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    pytest.fail("mlflow server did not come up")
                time.sleep(0.3)
        yield port
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its own workers only
        server.wait(timeout=30)


@pytest.fixture
def store(tmp_path: Path) -> dict[str, str]:
    """A fresh sqlite MLflow store and Tune storage folder under tmp_path."""
    return {
        "uri": f"sqlite:///{(tmp_path / 'runs' / 'mlflow.db').as_posix()}",
        "storage": str(tmp_path / "ray_results"),
    }


def write_preset(tmp_path: Path, scaling: dict | None = None, tune: dict | None = None) -> str:
    """A preset YAML derived from `smoke`, with the given sections updated key by key."""
    from study.config import PRESET_DIR

    raw = yaml.safe_load((PRESET_DIR / "smoke.yaml").read_text())
    for section, update in (("scaling", scaling), ("tune", tune)):
        for key, value in (update or {}).items():
            if isinstance(value, dict) and isinstance(raw[section].get(key), dict):
                raw[section][key].update(value)
            else:
                raw[section][key] = value
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def runs_of(uri: str, sweep: str, experiment: str = "relgrad") -> list:
    """Every run (parent and children) tagged with `sweep`; none while a sqlite store is not yet built.

    Never opens an absent sqlite store: MLflow would build it in place, racing the driver that builds it
    aside and moves it there (the poller then reads a replaced file: "disk I/O error").
    """
    from mlflow.tracking import MlflowClient

    from study.store import is_complete, sqlite_path

    path = sqlite_path(uri)
    if path is not None and not is_complete(path):
        return []
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], filter_string=f"tags.sweep = '{sweep}'")
