"""MLflow runs of one or several sweeps → tidy pandas DataFrames.

Only `mlflow`'s client is used; nothing here imports torch or the `study` package. The schema is
the contract in :mod:`analysis.schema`: a parent run per sweep (tags ``sweep``, ``role=parent``,
``kind``), a child run per trial (``role=trial``) and, for HPO sweeps, a ``role=best`` child.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from analysis.errors import ReportError
from analysis.mlflow_search import search_all_runs
from analysis.schema import (
    DEFAULT_EXPERIMENT,
    FLOAT_PARAMS,
    HISTORY_METRICS,
    INT_PARAMS,
    KIND_HPO,
    KIND_SCALING,
    METRICS,
    OPTIONAL_TAG_COLUMNS,
    REQUIRED_METRIC,
    ROLE_BEST,
    ROLE_DEFAULT,
    ROLE_PARENT,
    ROLE_TRIAL,
    STATUS_FAILED,
    STATUS_OK,
    STATUS_RUNNING,
    STR_PARAMS,
    TAG_COLUMNS,
    TAG_DEVICE_NAME,
    TAG_KIND,
    TAG_PARENT_RUN_ID,
    TAG_ROLE,
    TAG_STATUS,
    TAG_STATUS_REASON,
    TAG_SWEEP,
)

_MLFLOW_STATUS_TO_TRIAL = {"FINISHED": STATUS_OK, "FAILED": STATUS_FAILED, "KILLED": STATUS_FAILED}


@dataclass(frozen=True)
class SweepInfo:
    """One sweep as found in the tracking store.

    Attributes:
        name: the ``sweep`` tag.
        kind: ``scaling``, ``hpo`` or, when the parent does not say, what the trials suggest.
        parent_run_id: the newest parent run of that name (``None`` if the trials have no parent).
        ignored_parent_ids: older parent runs with the same sweep name, whose trials are left out.
        params: the parent's parameters (the sweep configuration).
        metrics, tags: the parent's metrics (e.g. ``matmul_peak_gflops``) and tags.
    """

    name: str
    kind: str
    parent_run_id: str | None
    ignored_parent_ids: tuple[str, ...] = ()
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class SweepData:
    """Everything the report needs, loaded once.

    Attributes:
        sweeps: one :class:`SweepInfo` per requested sweep, in request order.
        runs: one row per trial (see :func:`load_runs` for the columns).
        best: the retrained runs of HPO sweeps, ``role`` ``best`` (the best configuration) or ``default``
            (the default configuration on the same schedule); same columns; possibly empty.
        histories: long table ``run_id, metric, step, value, timestamp`` of the step-wise metrics.
    """

    sweeps: list[SweepInfo]
    runs: pd.DataFrame
    best: pd.DataFrame
    histories: pd.DataFrame


def normalise_sweep_names(sweeps: str | Sequence[str]) -> list[str]:
    """One name or several → a de-duplicated list; rejects empty input and quote characters."""
    names = [sweeps] if isinstance(sweeps, str) else list(sweeps)
    if not names:
        raise ReportError("no sweep name given: pass at least one sweep")
    cleaned: list[str] = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ReportError(f"sweep names must be non-empty strings, got {name!r}")
        # Names go into MLflow filter strings, whose quoting cannot express these characters.
        if any(ch in name for ch in "'\"\\`"):
            raise ReportError(f"sweep name {name!r} contains a quote or backslash")
        if name.strip() not in cleaned:
            cleaned.append(name.strip())
    return cleaned


def _client(tracking_uri: str) -> MlflowClient:
    if not tracking_uri:
        raise ReportError("tracking_uri is empty: give e.g. sqlite:////abs/path/mlflow.db")
    return MlflowClient(tracking_uri=tracking_uri)


def _experiment_id(client: MlflowClient, experiment: str, tracking_uri: str) -> str:
    try:
        exp = client.get_experiment_by_name(experiment)
    except MlflowException as err:
        raise ReportError(f"cannot read the tracking store {tracking_uri!r}: {err}") from err
    if exp is None:
        known = sorted(e.name for e in client.search_experiments())
        raise ReportError(
            f"experiment {experiment!r} not found at {tracking_uri!r}; known experiments: {known}"
        )
    return str(exp.experiment_id)


def _search(client: MlflowClient, experiment_id: str, filter_string: str) -> list[Run]:
    return search_all_runs(client, experiment_id, filter_string)


def _known_sweeps(client: MlflowClient, experiment_id: str) -> list[str]:
    parents = _search(client, experiment_id, f"tags.{TAG_ROLE} = '{ROLE_PARENT}'")
    return sorted({r.data.tags.get(TAG_SWEEP, "") for r in parents} - {""})


def _run_row(run: Run) -> dict[str, Any]:
    """Flatten one MLflow run into a dict of raw values (params as strings, metrics as floats)."""
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    row: dict[str, Any] = {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name or "",
        TAG_SWEEP: tags.get(TAG_SWEEP, ""),
        TAG_ROLE: tags.get(TAG_ROLE, ""),
        "parent_run_id": tags.get(TAG_PARENT_RUN_ID, ""),
        "start_time_ms": run.info.start_time,
        "mlflow_status": run.info.status,
    }
    for key in (*TAG_COLUMNS, *OPTIONAL_TAG_COLUMNS):
        row[key] = tags.get(key)
    if row[TAG_STATUS] is None:
        # The study always tags its trials; an untagged run (e.g. killed mid-write) is described
        # from MLflow's own run status rather than dropped.
        row[TAG_STATUS] = _MLFLOW_STATUS_TO_TRIAL.get(run.info.status, STATUS_RUNNING)
        row[TAG_STATUS_REASON] = f"no status tag; MLflow run status {run.info.status}"
    for key in (*INT_PARAMS, *FLOAT_PARAMS, *STR_PARAMS):
        row[key] = params.get(key)
    for key in METRICS:
        row[key] = metrics.get(key)
    for key, value in params.items():
        row.setdefault(key, value)
    for key, value in metrics.items():
        row.setdefault(key, value)
    return row


def _typed(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Raw rows → DataFrame with nullable ints, floats, strings and a UTC start time."""
    frame = pd.DataFrame(rows)
    for key in ("run_id", "run_name", TAG_SWEEP, TAG_ROLE, "parent_run_id", "mlflow_status"):
        if key not in frame:
            frame[key] = ""
    for key in INT_PARAMS:
        values = pd.to_numeric(frame.get(key), errors="coerce") if key in frame else None
        frame[key] = (
            pd.Series(pd.NA, index=frame.index, dtype="Int64")
            if values is None
            else values.round().astype("Int64")
        )
    for key in (*FLOAT_PARAMS, *METRICS):
        if key in frame:
            frame[key] = pd.to_numeric(frame[key], errors="coerce").astype("float64")
        else:
            frame[key] = pd.Series(float("nan"), index=frame.index, dtype="float64")
    for key in (
        *STR_PARAMS,
        *TAG_COLUMNS,
        *OPTIONAL_TAG_COLUMNS,
        TAG_SWEEP,
        TAG_ROLE,
        "parent_run_id",
        "run_name",
    ):
        if key in frame:
            frame[key] = frame[key].fillna("").astype(str)
        else:
            frame[key] = ""
    frame["method"] = frame["method"].replace("", "unknown")
    if "start_time_ms" in frame:
        frame["start_time"] = pd.to_datetime(frame.pop("start_time_ms"), unit="ms", utc=True)
    return frame


def _empty_runs() -> pd.DataFrame:
    return _typed([{"run_id": ""}]).iloc[0:0]


def _infer_kind(parent_kind: str | None, trials: list[Run]) -> str:
    if parent_kind:
        return parent_kind
    if any("sec_per_iter" in r.data.metrics for r in trials):
        return KIND_SCALING
    if any("val_ll" in r.data.metrics for r in trials):
        return KIND_HPO
    return "unknown"


def _collect(
    client: MlflowClient, experiment_id: str, names: list[str], tracking_uri: str, experiment: str
) -> tuple[list[SweepInfo], list[Run], list[Run]]:
    infos: list[SweepInfo] = []
    trial_runs: list[Run] = []
    best_runs: list[Run] = []
    for name in names:
        scope = f"tags.{TAG_SWEEP} = '{name}' AND tags.{TAG_ROLE}"
        parents = _search(client, experiment_id, f"{scope} = '{ROLE_PARENT}'")
        parents.sort(key=lambda r: r.info.start_time or 0, reverse=True)
        trials = _search(client, experiment_id, f"{scope} = '{ROLE_TRIAL}'")
        best = [
            r
            for role in (ROLE_BEST, ROLE_DEFAULT)
            for r in _search(client, experiment_id, f"{scope} = '{role}'")
        ]
        if not parents and not trials:
            known = _known_sweeps(client, experiment_id)
            raise ReportError(
                f"unknown sweep {name!r} in experiment {experiment!r} at {tracking_uri!r}; "
                f"known sweeps: {known if known else 'none'}"
            )
        parent = parents[0] if parents else None
        if parent is not None:
            # A re-run under the same name makes a new parent: report the newest one only.
            trials = [t for t in trials if t.data.tags.get(TAG_PARENT_RUN_ID) == parent.info.run_id]
            best = [b for b in best if b.data.tags.get(TAG_PARENT_RUN_ID) == parent.info.run_id]
        if not trials:
            where = f"parent run {parent.info.run_id}" if parent else "the store"
            raise ReportError(f"sweep {name!r} is empty: {where} has no trial runs (role=trial)")
        info = SweepInfo(
            name=name,
            kind=_infer_kind(parent.data.tags.get(TAG_KIND) if parent else None, trials),
            parent_run_id=parent.info.run_id if parent else None,
            ignored_parent_ids=tuple(p.info.run_id for p in parents[1:]),
            params=dict(parent.data.params) if parent else {},
            metrics=dict(parent.data.metrics) if parent else {},
            tags=dict(parent.data.tags) if parent else {},
        )
        infos.append(info)
        trial_runs.extend(trials)
        best_runs.extend(best)
    return infos, trial_runs, best_runs


def check_required_metrics(runs: pd.DataFrame, sweeps: Iterable[SweepInfo]) -> None:
    """Raise :class:`ReportError` if an ``ok`` trial lacks the metric its sweep kind needs."""
    for info in sweeps:
        metric = REQUIRED_METRIC.get(info.kind)
        if metric is None:
            continue
        ok = runs[(runs[TAG_SWEEP] == info.name) & (runs[TAG_STATUS] == STATUS_OK)]
        missing = ok[ok[metric].isna()]
        if len(missing):
            shown = ", ".join(missing["run_id"].head(5))
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise ReportError(
                f"sweep {info.name!r} ({info.kind}): {len(missing)} trial run(s) with status "
                f"'ok' lack the required metric {metric!r}: {shown}{more}"
            )


def load_runs(
    sweeps: str | Sequence[str],
    *,
    tracking_uri: str,
    experiment: str = DEFAULT_EXPERIMENT,
    check_metrics: bool = True,
) -> pd.DataFrame:
    """All trial runs of the given sweeps as one tidy DataFrame (one row per trial).

    Columns: ``run_id, sweep, parent_run_id, status, status_reason, method, dim, depth,
    batch_size, seed`` (nullable ``Int64``), ``lr, alpha`` and every metric of
    :data:`analysis.schema.METRICS` (``float64``, NaN when absent), the environment tags
    (``device_name, torch_version, ...``, ``str``), ``start_time`` (UTC), plus any further params.

    Raises:
        ReportError: unknown experiment or sweep, a sweep without trials, or (``check_metrics``)
            an ``ok`` trial without the metric its sweep kind requires.
    """
    return load_sweep_data(
        sweeps,
        tracking_uri=tracking_uri,
        experiment=experiment,
        check_metrics=check_metrics,
        histories=False,
    ).runs


def load_histories(
    run_ids: Iterable[str],
    *,
    tracking_uri: str,
    metrics: Sequence[str] = HISTORY_METRICS,
) -> pd.DataFrame:
    """Step-wise metric histories → long DataFrame ``run_id, metric, step, value, timestamp``."""
    client = _client(tracking_uri)
    rows: list[dict[str, Any]] = []
    for run_id in run_ids:
        for key in metrics:
            for m in client.get_metric_history(run_id, key):
                rows.append(
                    {
                        "run_id": run_id,
                        "metric": key,
                        "step": int(m.step),
                        "value": float(m.value),
                        "timestamp": int(m.timestamp),
                    }
                )
    frame = pd.DataFrame(rows, columns=["run_id", "metric", "step", "value", "timestamp"])
    return frame.astype({"step": "int64", "value": "float64", "timestamp": "int64"})


def load_sweep_data(
    sweeps: str | Sequence[str],
    *,
    tracking_uri: str,
    experiment: str = DEFAULT_EXPERIMENT,
    check_metrics: bool = True,
    histories: bool = True,
) -> SweepData:
    """Load trials, best-config runs and (optionally) metric histories of the given sweeps."""
    names = normalise_sweep_names(sweeps)
    client = _client(tracking_uri)
    experiment_id = _experiment_id(client, experiment, tracking_uri)
    infos, trial_runs, best_runs = _collect(client, experiment_id, names, tracking_uri, experiment)
    runs = _typed([_run_row(r) for r in trial_runs])
    kinds = {i.name: i.kind for i in infos}
    runs[TAG_KIND] = runs[TAG_SWEEP].map(kinds).astype(str)
    runs = runs.sort_values([TAG_SWEEP, "method", "dim", "depth", "batch_size", "seed"], kind="stable")
    runs = runs.reset_index(drop=True)
    if check_metrics:
        check_required_metrics(runs, infos)
    best = _typed([_run_row(r) for r in best_runs]) if best_runs else _empty_runs()
    with_history = [r.info.run_id for r in trial_runs if any(k in r.data.metrics for k in HISTORY_METRICS)]
    hist = (
        load_histories(with_history, tracking_uri=tracking_uri)
        if histories
        else load_histories([], tracking_uri=tracking_uri)
    )
    return SweepData(sweeps=infos, runs=runs, best=best, histories=hist)


def learning_curves(data: SweepData) -> pd.DataFrame:
    """Histories pivoted to one row per (run, step) with ``val_ll, train_ll, train_data_nll, train_time_s``
    and the run's configuration columns joined on."""
    hist = data.histories
    cols = ["run_id", "step", *HISTORY_METRICS]
    if hist.empty:
        return pd.DataFrame(columns=cols)
    wide = hist.pivot_table(
        index=["run_id", "step"], columns="metric", values="value", aggfunc="last"
    ).reset_index()
    wide.columns.name = None
    for key in HISTORY_METRICS:
        if key not in wide:
            wide[key] = float("nan")
    config = data.runs[
        [
            "run_id",
            TAG_SWEEP,
            TAG_KIND,
            "method",
            "dim",
            "depth",
            "batch_size",
            "lr",
            "seed",
            "dataset",
            TAG_STATUS,
            TAG_DEVICE_NAME,
            "true_test_ll",
        ]
    ]
    return wide[cols].merge(config, on="run_id", how="left").sort_values(["run_id", "step"])
