"""Where a sqlite MLflow store and its artifacts live: paths only, no mlflow import (the CLI and
``relgrad ui`` use them before, or without, loading MLflow)."""

from __future__ import annotations

import os
from pathlib import Path


def default_tracking_uri(cwd: str | Path | None = None) -> str:
    """``sqlite:////<abs cwd>/runs/mlflow.db``: MLflow 3 refuses the old ``./mlruns`` file store."""
    root = Path(cwd or os.getcwd()).resolve() / "runs"
    return f"sqlite:///{(root / 'mlflow.db').as_posix()}"


def default_artifact_root(tracking_uri: str) -> str | None:
    """Absolute artifact root next to a sqlite store (trials run in other working directories).

    For a tracking server the server's own artifact root is used (None).
    """
    path = sqlite_path(tracking_uri)
    return None if path is None else str(path.parent / "artifacts")


def sqlite_path(tracking_uri: str) -> Path | None:
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri[len("sqlite:///") :])
