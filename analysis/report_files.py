"""The report's files: written whole or not at all, and copied to MLflow whole or not at all.

A full disk must never leave a truncated report.html where the user looks for it, nor a truncated or empty
file in MLflow recorded as the report.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient

from analysis.loading import SweepInfo

#: Where the report lands among the artifacts of each sweep's parent run.
ARTIFACT_PATH = "report"


def write_whole(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: a full disk must not leave a truncated report."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def log_artifacts(tracking_uri: str, sweeps: list[SweepInfo], out: Path) -> tuple[list[str], list[str]]:
    """Log ``out`` as artifacts ``report/`` of each sweep's parent run: (runs logged, problems).

    A copy that fails part-way (a full disk, an artifact location that is a plain file) is removed, so
    that MLflow never holds a truncated or empty file as the report; each problem says so in one line.
    """
    client = MlflowClient(tracking_uri=tracking_uri)
    logged: list[str] = []
    problems: list[str] = []
    for info in sweeps:
        if info.parent_run_id is None:
            problems.append(f"sweep {info.name!r} has no parent run; report not logged to MLflow")
            continue
        try:
            client.log_artifacts(info.parent_run_id, str(out), artifact_path=ARTIFACT_PATH)
        except (MlflowException, OSError) as err:
            left = discard_partial_copy(client, info.parent_run_id)
            problems.append(
                f"could not log the report to MLflow run {info.parent_run_id}: {_one_line(err)}{left}"
            )
        else:
            logged.append(info.parent_run_id)
    return logged, problems


def discard_partial_copy(client: MlflowClient, run_id: str) -> str:
    """Remove what a failed ``log_artifacts`` left under ``report/``; what the user must know, if anything."""
    location = "the run's artifacts"
    try:
        location = f"{client.get_run(run_id).info.artifact_uri}/{ARTIFACT_PATH}"
        get_artifact_repository(location.rsplit("/", 1)[0]).delete_artifacts(ARTIFACT_PATH)
    except (MlflowException, OSError) as err:
        return f"; a partial copy may remain at {location} ({_one_line(err)})"
    return ""


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__
