"""MLflow tracking for sweeps: the store, parent/child runs and the environment tags.

The names (tags, statuses, metrics) are those of :mod:`analysis.schema`, the contract that
``analysis`` reads. One parent run per sweep (tags ``sweep``, ``role=parent``, ``kind``, ``driver``)
and one child run per trial (``mlflow.parentRunId``, ``sweep``, ``role``, ``status``,
``status_reason``, environment tags, ``trial_id`` and, for grid points, ``point_key``). A child run
is looked up by its trial id, then by its point key, before it is created, so a retried, resumed or
re-suggested trial reuses its run instead of duplicating it. A child starts with status ``running``;
one still RUNNING when no driver can be running it is reconciled to ``interrupted``.
"""

from __future__ import annotations

import functools
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.tracking import MlflowClient

from analysis.mlflow_search import search_all_runs
from analysis.schema import (
    DEFAULT_EXPERIMENT,
    POINT_TAGS,
    ROLE_PARENT,
    ROLE_TRIAL,
    STATUS_INTERRUPTED,
    STATUS_RUNNING,
    STATUSES,
    TAG_CPU_MODEL,
    TAG_CUDA_VERSION,
    TAG_DEVICE_NAME,
    TAG_GIT_COMMIT,
    TAG_HOST,
    TAG_KIND,
    TAG_NODE_ID,
    TAG_PARENT_RUN_ID,
    TAG_ROLE,
    TAG_STATUS,
    TAG_STATUS_REASON,
    TAG_SWEEP,
    TAG_TORCH_VERSION,
    TAG_TRIAL_ID,
)
from study import store
from study.config import ConfigError
from study.parsing import check_sweep_name as check_sweep_name  # re-exported: it lives in parsing
from study.parsing import first_line
from study.store import default_artifact_root as default_artifact_root  # re-exported: see study.store
from study.store import default_storage_path as default_storage_path
from study.store import default_tracking_uri as default_tracking_uri
from study.store import sqlite_path as sqlite_path

#: Tags of this module's own bookkeeping (not read by analysis): a scaling point's identity, the
#: number of starts of a child run, and the driver process that owns a parent run.
TAG_POINT_KEY = "point_key"
TAG_ATTEMPTS = "attempts"
TAG_DRIVER = "driver"

T = TypeVar("T")


@dataclass(frozen=True)
class TrackingContext:
    """Everything a trial process needs to log into its sweep (small and picklable)."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    sweep: str
    kind: str
    git_commit: str


# --------------------------------------------------------------------------------------------
# Store location and reachability
# --------------------------------------------------------------------------------------------
def check_tracking_uri(tracking_uri: str, timeout_s: float = 5.0, *, write: bool = True) -> None:
    """Raise ConfigError (one line) unless the store can be used, before any Ray or trial work.

    A server must answer ``/health``; a sqlite file is created whole if new and, with ``write``, really
    written to (a folder that ``os.access`` calls writable can still refuse files, e.g. ``/proc``; a
    read-only or full one is refused); a database URL needs its SQLAlchemy driver installed.
    """
    if tracking_uri.startswith(("http://", "https://")):
        _check_server(tracking_uri, timeout_s)
        return
    path = sqlite_path(tracking_uri)
    if tracking_uri.startswith("sqlite:") and path is None:
        raise ConfigError(f"tracking URI {tracking_uri!r}: use an absolute sqlite:////abs/path.db")
    if path is not None:
        _check_sqlite(tracking_uri, path, timeout_s, write)
        return
    if tracking_uri.startswith("file:") or "://" not in tracking_uri:
        raise ConfigError(
            f"tracking URI {tracking_uri!r}: MLflow 3 needs a database or server store; use "
            "sqlite:////abs/path/mlflow.db or http://host:port"
        )
    _check_database_driver(tracking_uri)


def _check_server(tracking_uri: str, timeout_s: float) -> None:
    url = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            if response.status != 200:
                raise ConfigError(f"tracking server {tracking_uri} answered {response.status} on /health")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConfigError(
            f"tracking server {tracking_uri} is unreachable ({reason}); start it "
            "(`mlflow server --host 127.0.0.1 --port 5000`) or drop --tracking-uri"
        ) from None


def _check_sqlite(tracking_uri: str, path: Path, timeout_s: float, write: bool) -> None:
    """The store is created whole if new (or rebuilt if an earlier creation was cut), opened by MLflow
    (an out-of-date schema says so here), and really written to (see :mod:`study.store`)."""
    if not path.is_absolute():
        raise ConfigError(f"tracking URI {tracking_uri!r}: the sqlite path must be absolute")
    try:
        client_for(tracking_uri)
    except ConfigError:
        raise
    except Exception as exc:  # MLflow refusing the store (e.g. its schema is older than this MLflow)
        raise ConfigError(f"tracking store {path}: MLflow cannot open it ({first_line(exc)})") from None
    if write:
        store.check_writable(path, timeout_s)


def _check_database_driver(tracking_uri: str) -> None:
    """A database URL (postgresql://, mysql://, mssql://) whose SQLAlchemy driver is importable."""
    import sqlalchemy
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    scheme = tracking_uri.split("://", 1)[0]
    try:
        # create_engine imports the DB-API driver but does not connect.
        sqlalchemy.create_engine(tracking_uri).dispose()
    except (ImportError, NoSuchModuleError) as exc:
        raise ConfigError(
            f"tracking URI {scheme}://…: its database driver is not installed ({exc}); install it "
            "(e.g. pip install psycopg2-binary) or use sqlite:////abs/path/mlflow.db"
        ) from None
    except ArgumentError as exc:
        raise ConfigError(f"tracking URI {scheme}://…: {exc}") from None


# --------------------------------------------------------------------------------------------
# sqlite tolerates one writer at a time: retry briefly when several trials log at once.
# --------------------------------------------------------------------------------------------
def with_retry(call: Callable[[], T], attempts: int = 20, wait_s: float = 0.25) -> T:
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:
            transient = "locked" in str(exc).lower() or "busy" in str(exc).lower()
            if not transient or attempt == attempts - 1:
                raise
            time.sleep(wait_s * (1 + attempt))
    raise AssertionError("unreachable")  # pragma: no cover


@functools.lru_cache(maxsize=8)
def client_for(tracking_uri: str) -> MlflowClient:
    """One client per process and store, its database schema set up once.

    A new sqlite store is built whole in a temporary file and moved into place, and one that an earlier
    creation left half-built is rebuilt (:func:`study.store.ensure_schema`); two processes doing so on
    a new file would race (``table ... already exists``), so the first use is serialised by an
    exclusive ``flock`` on a lock file beside the database.
    """
    path = sqlite_path(tracking_uri)
    if path is None or store.is_complete(path):  # nothing to create: no lock (a read-only store opens)
        return MlflowClient(tracking_uri=tracking_uri)
    with store.creation_lock(path):
        store.ensure_schema(path, default_artifact_root(tracking_uri))
        client = MlflowClient(tracking_uri=tracking_uri)
        with_retry(lambda: client.search_experiments(max_results=1))  # opens the store: set-up done
    return client


# --------------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------------
def ray_node_id() -> str:
    try:
        import ray

        if ray.is_initialized():
            return str(ray.get_runtime_context().get_node_id())
    except Exception:  # no Ray, or no runtime context: a plain local run
        pass
    return "local"


def environment_tags(device: str = "cpu") -> dict[str, str]:
    """torch/CUDA versions, the device's name, CPU model, host and Ray node of this process."""
    import torch

    from relgrad_core.machine import cpu_model

    model = cpu_model()
    if device.startswith("cuda") and torch.cuda.is_available():
        device_name = torch.cuda.get_device_name(torch.device(device))
    else:
        device_name = f"cpu: {model}"
    return {
        TAG_TORCH_VERSION: torch.__version__,
        TAG_CUDA_VERSION: str(torch.version.cuda or "none"),
        TAG_DEVICE_NAME: device_name,
        TAG_CPU_MODEL: model,
        TAG_HOST: socket.gethostname(),
        TAG_NODE_ID: ray_node_id(),
    }


# --------------------------------------------------------------------------------------------
# Experiment and parent run (on the driver, before any trial: avoids sqlite creation races)
# --------------------------------------------------------------------------------------------
def ensure_experiment(tracking_uri: str, name: str = DEFAULT_EXPERIMENT) -> str:
    client = client_for(tracking_uri)
    experiment = with_retry(lambda: client.get_experiment_by_name(name))
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            raise ConfigError(f"experiment {name!r} is deleted in {tracking_uri}; restore it first")
        return str(experiment.experiment_id)
    location = default_artifact_root(tracking_uri)
    artifact_location = None if location is None else f"{location}/{name}"
    return str(with_retry(lambda: client.create_experiment(name, artifact_location=artifact_location)))


def find_parent(tracking_uri: str, experiment_id: str, sweep: str) -> Run | None:
    client = client_for(tracking_uri)
    runs = with_retry(
        lambda: client.search_runs(
            [experiment_id],
            filter_string=f"tags.{TAG_SWEEP} = '{_quote(sweep)}' and tags.{TAG_ROLE} = '{ROLE_PARENT}'",
            max_results=2,
        )
    )
    return runs[0] if runs else None


def driver_id() -> str:
    """``host:pid`` of this process, recorded on the parent run it drives."""
    return f"{socket.gethostname()}:{os.getpid()}"


def driver_alive(driver: str) -> bool:
    """Whether the driver ``host:pid`` is a live process on this host (other hosts: unknown → False)."""
    host, _, pid = driver.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def create_parent(
    tracking_uri: str, experiment_id: str, sweep: str, kind: str, params: Mapping[str, str]
) -> str:
    from relgrad_core.machine import git_commit

    client = client_for(tracking_uri)
    tags = {
        TAG_SWEEP: sweep,
        TAG_ROLE: ROLE_PARENT,
        TAG_KIND: kind,
        TAG_GIT_COMMIT: git_commit(),
        TAG_DRIVER: driver_id(),
    }
    run = with_retry(lambda: client.create_run(experiment_id, run_name=sweep, tags=tags))
    log_params(tracking_uri, run.info.run_id, params)
    return str(run.info.run_id)


def resume_parent(tracking_uri: str, parent: Run) -> str:
    """Take over a sweep's parent run on ``--resume``; refuses while its driver still runs here."""
    driver = parent.data.tags.get(TAG_DRIVER, "")
    if parent.info.status == "RUNNING" and driver and driver_alive(driver):
        raise ConfigError(
            f"sweep {parent.data.tags.get(TAG_SWEEP)!r} is still running (driver {driver}); "
            "stop it before resuming"
        )
    run_id = str(parent.info.run_id)
    with_retry(lambda: client_for(tracking_uri).update_run(run_id, status="RUNNING"))
    set_tags(tracking_uri, run_id, {TAG_DRIVER: driver_id()})
    return run_id


def finish_parent(tracking_uri: str, run_id: str, ok: bool = True, *, run_status: str | None = None) -> None:
    """End the parent run: FINISHED (or FAILED), or ``run_status`` (KILLED for a resumable stop)."""
    client = client_for(tracking_uri)
    status = run_status or ("FINISHED" if ok else "FAILED")
    with_retry(lambda: client.set_terminated(run_id, status))


# --------------------------------------------------------------------------------------------
# Child runs
# --------------------------------------------------------------------------------------------
def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _search_children(ctx: TrackingContext, tag: str, value: str) -> list[Run]:
    client = client_for(ctx.tracking_uri)
    return with_retry(
        lambda: client.search_runs(
            [ctx.experiment_id],
            filter_string=f"tags.{TAG_SWEEP} = '{_quote(ctx.sweep)}' and tags.{tag} = '{_quote(value)}'",
            max_results=5,
        )
    )


def find_child(ctx: TrackingContext, trial_id: str, point_key: str | None = None) -> Run | None:
    """The child run of Tune trial ``trial_id`` or, failing that, of the grid point ``point_key``.

    The point key catches a trial that a dead driver launched after Tune's last checkpoint: on
    resume Tune suggests that point again under a new trial id, and it must land in the same run.
    """
    runs = _search_children(ctx, TAG_TRIAL_ID, trial_id)
    if not runs and point_key:
        runs = _search_children(ctx, TAG_POINT_KEY, point_key)
    return runs[0] if runs else None


def start_child(
    ctx: TrackingContext,
    trial_id: str,
    params: Mapping[str, Any],
    *,
    role: str = ROLE_TRIAL,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    point_key: str | None = None,
) -> str:
    """Find the child run of ``trial_id`` (a retry or a resumed trial) or create it, status ``running``.

    A reused run is put back to RUNNING, re-tagged with the current trial id, and its ``attempts``
    tag counts the starts. The grid coordinates among ``params`` (:data:`POINT_TAGS`) are tags too.
    """
    client = client_for(ctx.tracking_uri)
    existing = find_child(ctx, trial_id, point_key)
    all_tags = {
        TAG_PARENT_RUN_ID: ctx.parent_run_id,
        TAG_SWEEP: ctx.sweep,
        TAG_ROLE: role,
        TAG_TRIAL_ID: trial_id,
        TAG_GIT_COMMIT: ctx.git_commit,
        TAG_STATUS: STATUS_RUNNING,
        TAG_STATUS_REASON: "",
        **({TAG_POINT_KEY: point_key} if point_key else {}),
        **{name: str(params[name]) for name in POINT_TAGS if name in params},
        **(tags or {}),
    }
    if existing is None:
        all_tags[TAG_ATTEMPTS] = "1"
        run = with_retry(lambda: client.create_run(ctx.experiment_id, run_name=run_name, tags=all_tags))
        run_id = str(run.info.run_id)
    else:
        run_id = str(existing.info.run_id)
        all_tags[TAG_ATTEMPTS] = str(int(existing.data.tags.get(TAG_ATTEMPTS, "1")) + 1)
        with_retry(lambda: client.update_run(run_id, status="RUNNING"))
        set_tags(ctx.tracking_uri, run_id, all_tags)
    log_params(ctx.tracking_uri, run_id, params)
    return run_id


def log_params(tracking_uri: str, run_id: str, params: Mapping[str, Any]) -> None:
    client = client_for(tracking_uri)
    items = [Param(str(k), str(v)[:6000]) for k, v in params.items()]
    for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
        chunk = items[start : start + 100]
        with_retry(lambda chunk=chunk: client.log_batch(run_id, params=chunk))


def set_tags(tracking_uri: str, run_id: str, tags: Mapping[str, str]) -> None:
    client = client_for(tracking_uri)
    items = [RunTag(str(k), str(v)[:5000]) for k, v in tags.items()]
    with_retry(lambda: client.log_batch(run_id, tags=items))


def log_metrics(tracking_uri: str, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
    client = client_for(tracking_uri)
    now = int(time.time() * 1000)
    # NaN means "not measured here" (e.g. no load average): left out rather than stored.
    items = [Metric(k, float(v), now, int(step)) for k, v in metrics.items() if v is not None and v == v]
    if items:
        with_retry(lambda: client.log_batch(run_id, metrics=items))


def finish_child(
    tracking_uri: str, run_id: str, status: str, reason: str = "", *, run_status: str = "FINISHED"
) -> None:
    """Record a child run's final ``status`` (one of the schema's STATUSES) and end it."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    set_tags(tracking_uri, run_id, {TAG_STATUS: status, TAG_STATUS_REASON: reason})
    client = client_for(tracking_uri)
    with_retry(lambda: client.set_terminated(run_id, run_status))


def mark_interrupted(tracking_uri: str, run_id: str, reason: str) -> None:
    """An interrupted trial: status ``interrupted``, run KILLED; resume re-runs it in this run."""
    finish_child(tracking_uri, run_id, STATUS_INTERRUPTED, reason, run_status="KILLED")


def reconcile_running(tracking_uri: str, experiment_id: str, sweep: str, reason: str) -> int:
    """Mark every child run of ``sweep`` still RUNNING as interrupted; returns how many there were.

    Called when no trial of the sweep can be running any more: after an interrupted ``tuner.fit`` and
    on ``--resume`` (the previous driver is gone, so its RUNNING children are stale).
    """
    stale = [r for r in child_runs(tracking_uri, experiment_id, sweep) if r.info.status == "RUNNING"]
    for run in stale:
        mark_interrupted(tracking_uri, str(run.info.run_id), reason)
    return len(stale)


def child_runs(tracking_uri: str, experiment_id: str, sweep: str) -> list[Run]:
    """Every child run of a sweep (trials, skipped points, best retrains)."""
    filter_string = f"tags.{TAG_SWEEP} = '{_quote(sweep)}' and tags.{TAG_ROLE} != '{ROLE_PARENT}'"
    return search_all_runs(client_for(tracking_uri), experiment_id, filter_string, retry=with_retry)


# --------------------------------------------------------------------------------------------
# Tracking failures on the driver: recorded per sweep, so the sweep stops cleanly (not a traceback).
# --------------------------------------------------------------------------------------------
_PROBLEMS: dict[str, str] = {}


def note_problem(sweep: str, exc: BaseException) -> None:
    """Remember the first tracking failure of ``sweep`` (its first line)."""
    _PROBLEMS.setdefault(sweep, f"{type(exc).__name__}: {first_line(exc)[:300]}")


def problem(sweep: str) -> str | None:
    return _PROBLEMS.get(sweep)


def clear_problem(sweep: str) -> None:
    _PROBLEMS.pop(sweep, None)
