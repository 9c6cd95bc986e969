"""Stores that fill up or cannot be written (issue 17, finding 8), on real files: a full disk is a file-size
limit (``RLIMIT_FSIZE``) in a subprocess, which makes every write past it fail as a full disk does (SQLite
reports a disk I/O error), and which needs no root and leaves nothing to clean up.

After each fault the store must be usable by the next command, and the command that met it must end with
one line and exit code 2 before Ray starts."""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from study import store, tracking
from study.cli import main

REPO = Path(__file__).resolve().parents[2]
#: Smaller than a new MLflow store (~1 MB): its creation fails part-way, as on a disk that fills up.
LIMIT_BYTES = 400 * 1024


def _limited(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``command`` with files capped at LIMIT_BYTES (writes beyond fail with EFBIG, not a signal)."""

    def cap() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT_BYTES, LIMIT_BYTES))

    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        command, cwd=cwd, env=env, preexec_fn=cap, capture_output=True, text=True, timeout=300
    )


def _cli(uri: str, tmp_path: Path) -> list[str]:
    where = ["--tracking-uri", uri, "--storage-path", str(tmp_path / "ray_results"), "--num-cpus", "1"]
    return [sys.executable, "-m", "study.cli", "scaling", "--preset", "smoke", "--name", "full", *where]


def _experiments(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return [row[0] for row in connection.execute("SELECT name FROM experiments")]


def test_a_disk_that_fills_while_the_store_is_created_leaves_no_half_store(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "mlflow.db"
    uri = f"sqlite:///{path}"
    done = _limited(_cli(uri, tmp_path), tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"relgrad: error: tracking store {path}: cannot create it")
    assert not path.exists() and not list(path.parent.glob(".mlflow.db.*"))  # nothing half-built, no debris
    tracking.check_tracking_uri(uri)  # the next command, with room, creates it whole
    assert _experiments(path) == ["Default"]


def test_a_store_left_half_built_by_plain_mlflow_is_rebuilt_with_a_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mlflow.db"
    opener = (
        f"from mlflow.tracking import MlflowClient; MlflowClient('sqlite:///{path}').search_experiments()"
    )
    done = _limited([sys.executable, "-c", opener], tmp_path)  # what MLflow alone leaves on a full disk
    assert done.returncode != 0 and path.exists() and _experiments(path) == []
    reopened = subprocess.run([sys.executable, "-c", opener], capture_output=True, text=True, timeout=300)
    assert reopened.returncode != 0 and "already exists" in reopened.stderr  # the trap of the issue

    tracking.check_tracking_uri(f"sqlite:///{path}")
    assert "was left half-built" in capsys.readouterr().err
    assert _experiments(path) == ["Default"]


def test_a_full_store_is_one_line_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "mlflow.db"
    tracking.check_tracking_uri(f"sqlite:///{path}")  # a complete store, larger than the limit
    done = _limited(_cli(f"sqlite:///{path}", tmp_path), tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    (line,) = done.stderr.strip().splitlines()
    assert line == (
        f"relgrad: error: tracking store {path}: no room to write beside it (File too large); free some "
        "space or choose another --tracking-uri"
    )
    assert not (tmp_path / "ray_results" / "full").exists()


def test_a_read_only_store_is_one_line_exit_2_before_ray(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "runs" / "mlflow.db"
    tracking.check_tracking_uri(f"sqlite:///{path}")
    if os.geteuid() != 0:
        path.chmod(0o444)
    else:  # root writes through any mode bits: open the file the way SQLite opens a read-only one

        def read_only(file: Path, timeout_s: float) -> sqlite3.Connection:
            return sqlite3.connect(f"{file.as_uri()}?mode=ro", uri=True, timeout=timeout_s)

        monkeypatch.setattr(store, "_open", read_only)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ray was started for a read-only store")

    monkeypatch.setattr("study.ray_runtime.start_ray", refuse)
    tracking.client_for.cache_clear()
    argv = ["scaling", "--preset", "smoke", "--name", "ro", "--tracking-uri", f"sqlite:///{path}"]
    assert main([*argv, "--storage-path", str(tmp_path / "ray_results")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"relgrad: error: tracking store {path}: cannot write to it (attempt to write a readonly database)"
    )
