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
