"""A report MLflow cannot take a copy of (issue 17, finding 9): the artifact location is a plain file, or the
disk fills while the report is copied or written. Each is said on stderr, changes the exit code to 1, leaves
no truncated file recorded as the report, and the report's own location is printed whenever it exists."""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from study.cli import main
from tests.analysis.conftest import SCALING, FakeStore, build_store

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def small_store(tmp_path: Path) -> FakeStore:
    return build_store(tmp_path / "store", hpo=False, methods=("relative", "mlp"))


def _report(store: FakeStore, out: Path) -> list[str]:
    return ["report", "--sweep", SCALING, "--tracking-uri", store.tracking_uri, "--out", str(out)]


def _artifact_files(store: FakeStore) -> list[tuple[str, int]]:
    """(path, size) of every file MLflow holds for the sweep's parent run."""
    client = MlflowClient(tracking_uri=store.tracking_uri)
    found: list[tuple[str, int]] = []
    folders = [""]
    while folders:
        for item in client.list_artifacts(store.scaling_parent, folders.pop() or None):
            if item.is_dir:
                folders.append(item.path)
            else:
                found.append((item.path, int(item.file_size or 0)))
    return found


def test_an_artifact_location_that_is_a_plain_file_is_said_and_exits_1(
    small_store: FakeStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (small_store.root / "artifacts").write_text("not a folder")  # where MLflow would copy the report
    out = tmp_path / "report"
    assert main(_report(small_store, out)) == 1
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert line.startswith(
        f"relgrad report: could not log the report to MLflow run {small_store.scaling_parent}"
    )
    assert f"report: {out / 'report.html'}" in captured.out  # where it is, though MLflow has no copy
    assert (out / "report.html").stat().st_size > 0


def test_a_disk_that_fills_while_the_report_is_copied_leaves_no_empty_artifact(
    small_store: FakeStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import mlflow.store.artifact.local_artifact_repo as local

    def fill_up(source: str, target: str) -> None:
        """What a full disk does to a copy: the first file is created, then writing it fails."""
        Path(target).mkdir(parents=True, exist_ok=True)
        (Path(target) / "report.html").touch()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(local, "shutil_copytree_without_file_permissions", fill_up)
    out = tmp_path / "report"
    assert main(_report(small_store, out)) == 1
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert "could not log the report to MLflow run" in line and "No space left on device" in line
    assert "partial copy" not in line  # it was removed
    assert _artifact_files(small_store) == []  # no 0-byte report.html recorded as the report
    assert f"report: {out / 'report.html'}" in captured.out


def test_a_disk_that_fills_while_the_report_is_written_is_one_line_exit_1(
    small_store: FakeStore, tmp_path: Path
) -> None:
    """A real limit: files may not grow past 64 KiB, less than the self-contained report.html."""
    limit = 64 * 1024

    def cap() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = tmp_path / "report"
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "study.cli", *_report(small_store, out)],
        env=env,
        preexec_fn=cap,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    (line,) = done.stderr.strip().splitlines()
    assert line == f"relgrad report: cannot write the report under {out}: File too large"
    assert not (out / "report.html").exists()  # never a truncated report
    assert not list(out.glob(".*.partial"))
    assert _artifact_files(small_store) == []
