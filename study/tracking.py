"""MLflow tracking for sweeps: the store, parent/child runs and the environment tags.

Schema (shared with ``analysis/``): one parent run per sweep (tags ``sweep``, ``role=parent``,
``kind``) and one child run per trial (tags ``mlflow.parentRunId``, ``sweep``, ``role``, ``status``,
``status_reason``, environment tags, ``trial_id``). A child run is looked up by its ``trial_id``
before it is created, so a retried or resumed trial reuses its run instead of duplicating it.
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.tracking import MlflowClient

from study.config import ConfigError

STATUSES: tuple[str, ...] = ("ok", "diverged", "skipped_over_budget", "failed")
DEFAULT_EXPERIMENT = "relgrad"
PROJECT_ROOT = Path(__file__).resolve().parent.parent

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


def check_tracking_uri(tracking_uri: str, timeout_s: float = 5.0) -> None:
    """Raise ConfigError unless the store can be used: a reachable server or a writable sqlite."""
    if tracking_uri.startswith(("http://", "https://")):
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
        return
    path = sqlite_path(tracking_uri)
    if tracking_uri.startswith("sqlite:") and path is None:
        raise ConfigError(f"tracking URI {tracking_uri!r}: use an absolute sqlite:////abs/path.db")
    if path is not None:
        if not path.is_absolute():
            raise ConfigError(f"tracking URI {tracking_uri!r}: the sqlite path must be absolute")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"tracking store {path}: cannot create its folder ({exc})") from None
        if not os.access(path.parent, os.W_OK):
            raise ConfigError(f"tracking store {path}: folder {path.parent} is not writable")
        return
    if tracking_uri.startswith("file:") or "://" not in tracking_uri:
        raise ConfigError(
            f"tracking URI {tracking_uri!r}: MLflow 3 needs a database or server store; use "
            "sqlite:////abs/path/mlflow.db or http://host:port"
        )


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
    """One client per process and store (creating a sqlite client checks the schema: slow)."""
    return MlflowClient(tracking_uri=tracking_uri)


# --------------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def git_commit(root: Path = PROJECT_ROOT) -> str:
    """The project's commit (``RELGRAD_GIT_COMMIT`` wins: cluster nodes may have no .git)."""
    if os.environ.get("RELGRAD_GIT_COMMIT"):
        return os.environ["RELGRAD_GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip()
    if out.returncode != 0 or not commit:
        return "unknown"
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.strip()
    return f"{commit}-dirty" if dirty else commit


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

    model = cpu_model()
    if device.startswith("cuda") and torch.cuda.is_available():
        device_name = torch.cuda.get_device_name(torch.device(device))
    else:
        device_name = f"cpu: {model}"
    return {
        "torch_version": torch.__version__,
        "cuda_version": str(torch.version.cuda or "none"),
        "device_name": device_name,
        "cpu_model": model,
        "host": socket.gethostname(),
        "node_id": ray_node_id(),
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
            filter_string=f"tags.sweep = '{_quote(sweep)}' and tags.role = 'parent'",
            max_results=2,
        )
    )
    return runs[0] if runs else None


def create_parent(
    tracking_uri: str, experiment_id: str, sweep: str, kind: str, params: Mapping[str, str]
) -> str:
    client = client_for(tracking_uri)
    tags = {"sweep": sweep, "role": "parent", "kind": kind, "git_commit": git_commit()}
    run = with_retry(lambda: client.create_run(experiment_id, run_name=sweep, tags=tags))
    log_params(tracking_uri, run.info.run_id, params)
    return str(run.info.run_id)


def finish_parent(tracking_uri: str, run_id: str, ok: bool = True) -> None:
    client = client_for(tracking_uri)
    with_retry(lambda: client.set_terminated(run_id, "FINISHED" if ok else "FAILED"))


# --------------------------------------------------------------------------------------------
# Child runs
# --------------------------------------------------------------------------------------------
def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def find_child(ctx: TrackingContext, trial_id: str) -> Run | None:
    client = client_for(ctx.tracking_uri)
    runs = with_retry(
        lambda: client.search_runs(
            [ctx.experiment_id],
            filter_string=(f"tags.sweep = '{_quote(ctx.sweep)}' and tags.trial_id = '{_quote(trial_id)}'"),
            max_results=5,
        )
    )
    return runs[0] if runs else None


def start_child(
    ctx: TrackingContext,
    trial_id: str,
    params: Mapping[str, Any],
    *,
    role: str = "trial",
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Find the child run of ``trial_id`` (a retry or a resumed trial) or create it.

    A reused run is put back to RUNNING and its ``attempts`` tag counts the starts.
    """
    client = client_for(ctx.tracking_uri)
    existing = find_child(ctx, trial_id)
    all_tags = {
        "mlflow.parentRunId": ctx.parent_run_id,
        "sweep": ctx.sweep,
        "role": role,
        "trial_id": trial_id,
        "git_commit": ctx.git_commit,
        **(tags or {}),
    }
    if existing is None:
        all_tags["attempts"] = "1"
        run = with_retry(lambda: client.create_run(ctx.experiment_id, run_name=run_name, tags=all_tags))
        run_id = str(run.info.run_id)
    else:
        run_id = str(existing.info.run_id)
        all_tags["attempts"] = str(int(existing.data.tags.get("attempts", "1")) + 1)
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
    items = [Metric(k, float(v), now, int(step)) for k, v in metrics.items() if v is not None]
    if items:
        with_retry(lambda: client.log_batch(run_id, metrics=items))


def finish_child(
    tracking_uri: str, run_id: str, status: str, reason: str = "", *, run_status: str = "FINISHED"
) -> None:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    set_tags(tracking_uri, run_id, {"status": status, "status_reason": reason})
    client = client_for(tracking_uri)
    with_retry(lambda: client.set_terminated(run_id, run_status))


def child_runs(tracking_uri: str, experiment_id: str, sweep: str) -> list[Run]:
    """Every child run of a sweep (trials, skipped points, best retrains)."""
    client = client_for(tracking_uri)
    filter_string = f"tags.sweep = '{_quote(sweep)}' and tags.role != 'parent'"
    runs: list[Run] = []
    token: str | None = None
    while True:
        page = with_retry(
            lambda token=token: client.search_runs(
                [experiment_id], filter_string=filter_string, max_results=1000, page_token=token
            )
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs
