"""Fixtures shared by every test folder: one per session, however many folders use them."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

#: Session fixtures whose process the tests share by design: one MLflow server (a test cuts it off behind a
#: relay while another sweep uses it). Under ``pytest -n 2 --dist loadgroup`` (``make test``) every test that
#: uses it runs on the same worker, so that it starts once per run. The embedded Ray (``ray_session``) is
#: not grouped: each worker starts its own, so that the sweeps, most of the suite's time, spread over both.
SHARED_PROCESSES = ("mlflow_server",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if any(name in getattr(item, "fixturenames", ()) for name in SHARED_PROCESSES):
            item.add_marker(pytest.mark.xdist_group("shared-processes"))


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
