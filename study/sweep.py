"""Scaling and HPO sweeps on Ray Tune, tracked in MLflow (the driver side).

The driver validates, creates the MLflow experiment and the sweep's parent run before any trial
(sqlite creation races), launches trials with :func:`study.trial.tune_trial`, and finalises child
runs the trial process could not finish itself (a worker that died, a trial ASHA stopped).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune import Callback, FailureConfig, RunConfig, TuneConfig, Tuner

from study import tracking
from study.config import (
    ConfigError,
    HpoConfig,
    ScalingConfig,
    flatten,
    from_dict,
    to_dict,
    validate_hpo,
    validate_scaling,
)
from study.searcher import BudgetedGridSearcher
from study.tracking import TrackingContext
from study.trial import SweepContext, run_logged, run_name, trial_params, tune_trial

SWEEP_FILE_SUFFIX = ".relgrad.json"


@dataclass
class SweepSummary:
    sweep: str
    kind: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    storage_path: str
    statuses: dict[str, int] = field(default_factory=dict)
    complete: bool = True
    best: dict[str, Any] | None = None


class MlflowFinaliser(Callback):
    """Ends child runs that their trial process could not end (driver side).

    A worker killed outright never reaches the trial's own ``finally``; a trial stopped by the
    scheduler may be cut between reports. Either way the run must not stay RUNNING forever.
    """

    def __init__(self, ctx: SweepContext) -> None:
        self.ctx = ctx

    def _ensure_run(self, trial) -> str:
        run = tracking.find_child(self.ctx.tracking, trial.trial_id)
        if run is not None:
            return str(run.info.run_id)
        params = {**trial_params(trial.config, self.ctx.data, self.ctx.train), **self.ctx.extra_params}
        return tracking.start_child(
            self.ctx.tracking,
            trial.trial_id,
            params,
            role=self.ctx.role,
            run_name=run_name(trial.config),
        )

    def on_trial_complete(self, iteration: int, trials: list, trial, **info: Any) -> None:
        run = tracking.find_child(self.ctx.tracking, trial.trial_id)
        if run is not None and run.info.status == "RUNNING":
            evaluations = int((trial.last_result or {}).get("training_iteration", 0))
            tracking.finish_child(
                self.ctx.tracking.tracking_uri,
                str(run.info.run_id),
                "ok",
                f"stopped early by the scheduler after {evaluations} evaluations",
            )

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        run_id = self._ensure_run(trial)
        message = (getattr(trial, "error_msg", None) or "the trial's worker failed").strip()
        tracking.finish_child(
            self.ctx.tracking.tracking_uri,
            run_id,
            "failed",
            message.splitlines()[-1][:2000],
            run_status="FAILED",
        )


# --------------------------------------------------------------------------------------------
# Shared driver plumbing
# --------------------------------------------------------------------------------------------
def _fs(storage_path: str):
    """(filesystem, path) for a local folder or a URI such as s3://bucket/relgrad (pyarrow)."""
    from pyarrow import fs

    return fs.FileSystem.from_uri(storage_path)


def sweep_file(storage_path: str, sweep: str) -> str:
    return f"{storage_path.rstrip('/')}/{sweep}{SWEEP_FILE_SUFFIX}"


def save_config(storage_path: str, sweep: str, saved: dict[str, Any]) -> None:
    filesystem, path = _fs(sweep_file(storage_path, sweep))
    with filesystem.open_output_stream(path) as handle:
        handle.write(json.dumps(saved, indent=1).encode())


def load_saved_config(storage_path: str, sweep: str) -> dict[str, Any]:
    """The config a sweep was started with (``--resume`` needs no other flags)."""
    from pyarrow import fs

    filesystem, path = _fs(sweep_file(storage_path, sweep))
    if filesystem.get_file_info(path).type != fs.FileType.File:
        raise ConfigError(f"--resume: no sweep named {sweep!r} under {storage_path}")
    with filesystem.open_input_stream(path) as handle:
        return json.loads(handle.read().decode())


def check_gpus(gpus_per_trial: float) -> None:
    """GPUs requested but the cluster has none: say so before any trial (Tune would wait forever)."""
    if gpus_per_trial <= 0:
        return
    available = float(ray.cluster_resources().get("GPU", 0.0))
    if available <= 0:
        raise ConfigError(
            f"resources.gpus_per_trial={gpus_per_trial:g} but the Ray cluster has no GPU; "
            "use --gpus-per-trial 0 or connect to a GPU cluster with --address"
        )
    if gpus_per_trial > available:
        raise ConfigError(
            f"resources.gpus_per_trial={gpus_per_trial:g} exceeds the cluster's {available:g} GPUs"
        )


def check_cpus(cpus_per_trial: float) -> None:
    available = float(ray.cluster_resources().get("CPU", 0.0))
    if cpus_per_trial > available:
        raise ConfigError(
            f"resources.cpus_per_trial={cpus_per_trial:g} exceeds the cluster's {available:g} CPUs"
        )


def prepare_tracking(
    tracking_uri: str, experiment: str, sweep: str, kind: str, params: dict[str, str], resume: bool
) -> TrackingContext:
    """Create (or, on resume, find) the experiment and the sweep's parent run."""
    experiment_id = tracking.ensure_experiment(tracking_uri, experiment)
    parent = tracking.find_parent(tracking_uri, experiment_id, sweep)
    if resume:
        if parent is None:
            raise ConfigError(f"--resume: sweep {sweep!r} has no parent run in {tracking_uri}")
        parent_id = str(parent.info.run_id)
        tracking.client_for(tracking_uri).update_run(parent_id, status="RUNNING")
    else:
        if parent is not None:
            raise ConfigError(
                f"sweep {sweep!r} already exists in experiment {experiment!r}; pass --resume to "
                "continue it or choose another --name"
            )
        parent_id = tracking.create_parent(tracking_uri, experiment_id, sweep, kind, params)
    return TrackingContext(
        tracking_uri=tracking_uri,
        experiment_id=experiment_id,
        parent_run_id=parent_id,
        sweep=sweep,
        kind=kind,
        git_commit=tracking.git_commit(),
    )


def _statuses(ctx: TrackingContext) -> dict[str, int]:
    runs = tracking.child_runs(ctx.tracking_uri, ctx.experiment_id, ctx.sweep)
    return dict(Counter(r.data.tags.get("status", "unknown") for r in runs))


def _trials_unfinished(results) -> bool:
    trials = getattr(results, "_experiment_analysis", None)
    trials = getattr(trials, "trials", None) or []
    return any(t.status not in ("TERMINATED", "ERROR") for t in trials)


def _run_config(sweep: str, storage_path: str, max_failures: int, ctx: SweepContext) -> RunConfig:
    return RunConfig(
        name=sweep,
        storage_path=storage_path,
        failure_config=FailureConfig(max_failures=max_failures),
        callbacks=[MlflowFinaliser(ctx)],
        verbose=int(os.environ.get("RELGRAD_TUNE_VERBOSE", "1")),
    )


def _trainable(ctx: SweepContext, cpus: float, gpus: float):
    return tune.with_resources(tune.with_parameters(tune_trial, ctx=ctx), {"cpu": cpus, "gpu": gpus})


def _check_storage(storage_path: str, sweep: str, resume: bool) -> str:
    """Tune's storage: a local folder (made absolute) or a URI (s3://, gs://, a shared FS)."""
    from pyarrow import fs

    if "://" not in storage_path:
        storage_path = str(Path(storage_path).expanduser().resolve())
    experiment_dir = f"{storage_path.rstrip('/')}/{sweep}"
    if resume and not Tuner.can_restore(experiment_dir):
        raise ConfigError(f"--resume: no restorable Tune experiment at {experiment_dir}")
    filesystem, path = _fs(experiment_dir)
    if not resume and filesystem.get_file_info(path).type != fs.FileType.NotFound:
        raise ConfigError(
            f"Tune results for sweep {sweep!r} already exist at {experiment_dir}; pass --resume or "
            "choose another --name"
        )
    filesystem.create_dir(_fs(storage_path)[1], recursive=True)
    return storage_path


# --------------------------------------------------------------------------------------------
# Scaling
# --------------------------------------------------------------------------------------------
def run_scaling(
    cfg: ScalingConfig,
    *,
    sweep: str,
    tracking_uri: str,
    experiment: str,
    storage_path: str,
    resume: bool = False,
) -> SweepSummary:
    """Run (or resume) a budget-aware scaling sweep; Ray must be initialised by the caller."""
    validate_scaling(cfg)
    storage_path = _check_storage(storage_path, sweep, resume)
    check_gpus(cfg.resources.gpus_per_trial)
    check_cpus(cfg.resources.cpus_per_trial)
    params = flatten(to_dict(cfg))
    tctx = prepare_tracking(tracking_uri, experiment, sweep, "scaling", params, resume)
    ctx = SweepContext(
        tracking=tctx,
        data=cfg.data,
        train=cfg.train,
        inject_worker_kill=cfg.inject_worker_kill,
        extra_params={"sweep_kind": "scaling", "budget_s": str(cfg.budget_s)},
    )
    points = cfg.points()
    trainable = _trainable(ctx, cfg.resources.cpus_per_trial, cfg.resources.gpus_per_trial)
    if resume:
        tuner = Tuner.restore(f"{storage_path.rstrip('/')}/{sweep}", trainable=trainable)
    else:
        save_config(
            storage_path, sweep, {"kind": "scaling", "config": to_dict(cfg), "experiment": experiment}
        )
        budgets = {m: cfg.budget_for(m) for m in cfg.methods}
        searcher = BudgetedGridSearcher(points, budgets, ctx)
        tuner = Tuner(
            trainable,
            tune_config=TuneConfig(
                search_alg=searcher,
                num_samples=len(points),
                max_concurrent_trials=cfg.resources.max_concurrent,
                reuse_actors=True,
            ),
            run_config=_run_config(sweep, storage_path, cfg.resources.max_failures, ctx),
        )
    results = tuner.fit()
    statuses = _statuses(tctx)
    complete = not _trials_unfinished(results) and sum(statuses.values()) >= len(points)
    if complete:
        tracking.finish_parent(tracking_uri, tctx.parent_run_id)
    return SweepSummary(
        sweep=sweep,
        kind="scaling",
        tracking_uri=tracking_uri,
        experiment_id=tctx.experiment_id,
        parent_run_id=tctx.parent_run_id,
        storage_path=storage_path,
        statuses=statuses,
        complete=complete,
    )


def scaling_from_saved(saved: dict[str, Any]) -> ScalingConfig:
    if saved.get("kind") != "scaling":
        raise ConfigError(f"--resume: sweep is a {saved.get('kind')!r} sweep, not scaling")
    return from_dict(ScalingConfig, saved["config"], "scaling")


# --------------------------------------------------------------------------------------------
# HPO
# --------------------------------------------------------------------------------------------
def dataset_dim(cfg: HpoConfig) -> int:
    """The data's dimension, loading a named data set once on the driver (clear error if absent)."""
    if cfg.data.dataset in ("teacher", "noise"):
        if cfg.data.dim is None:
            raise ConfigError(f"tune.data.dim: required for the synthetic {cfg.data.dataset!r} data")
        return int(cfg.data.dim)
    from relgrad_core import load_dataset

    try:
        return int(load_dataset(cfg.data.dataset, root=cfg.data.root, seed=cfg.space.seed).dim)
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise ConfigError(f"tune.data.dataset {cfg.data.dataset!r}: {exc}") from None


def optuna_storage_uri(tracking_uri: str) -> str:
    """The Optuna study lives next to the sqlite MLflow store (``optuna-dashboard`` opens it)."""
    path = tracking.sqlite_path(tracking_uri)
    folder = path.parent if path is not None else Path.cwd().resolve() / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'optuna.db').as_posix()}"


def run_hpo(
    cfg: HpoConfig,
    *,
    sweep: str,
    tracking_uri: str,
    experiment: str,
    storage_path: str,
    resume: bool = False,
) -> SweepSummary:
    """Optuna TPE + ASHA on exact validation LL, then retrain the best config and test it."""
    import optuna
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    validate_hpo(cfg)
    dim = dataset_dim(cfg)
    storage_path = _check_storage(storage_path, sweep, resume)
    check_gpus(cfg.resources.gpus_per_trial)
    check_cpus(cfg.resources.cpus_per_trial)
    tctx = prepare_tracking(tracking_uri, experiment, sweep, "hpo", flatten(to_dict(cfg)), resume)
    ctx = SweepContext(tracking=tctx, data=cfg.data, train=cfg.train, extra_params={"sweep_kind": "hpo"})
    trainable = _trainable(ctx, cfg.resources.cpus_per_trial, cfg.resources.gpus_per_trial)
    space = cfg.space
    optuna_uri = optuna_storage_uri(tracking_uri)
    if resume:
        tuner = Tuner.restore(f"{storage_path.rstrip('/')}/{sweep}", trainable=trainable)
    else:
        save_config(storage_path, sweep, {"kind": "hpo", "config": to_dict(cfg), "experiment": experiment})
        distributions = {
            "lr": optuna.distributions.FloatDistribution(space.lr_min, space.lr_max, log=True),
            "depth": optuna.distributions.CategoricalDistribution(list(space.depths)),
            "alpha": optuna.distributions.FloatDistribution(space.alpha_min, space.alpha_max),
            "batch_size": optuna.distributions.CategoricalDistribution(list(space.batch_sizes)),
        }
        # metric/mode go to the searcher and scheduler themselves: an OptunaSearch built with its
        # own space ignores TuneConfig's (and creates its study, direction included, right away).
        searcher = OptunaSearch(
            space=distributions,
            metric="val_ll",
            mode="max",
            sampler=optuna.samplers.TPESampler(seed=space.seed),
            storage=optuna.storages.RDBStorage(optuna_uri),
            study_name=sweep,
        )
        scheduler = ASHAScheduler(
            time_attr="training_iteration",
            metric="val_ll",
            mode="max",
            max_t=cfg.train.epochs + 1,
            grace_period=space.grace_period,
            reduction_factor=space.reduction_factor,
        )
        tuner = Tuner(
            trainable,
            param_space={"method": space.method, "dim": dim, "seed": space.seed},
            tune_config=TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=space.samples,
                max_concurrent_trials=cfg.resources.max_concurrent,
                reuse_actors=True,
            ),
            run_config=_run_config(sweep, storage_path, cfg.resources.max_failures, ctx),
        )
    results = tuner.fit()
    complete = not _trials_unfinished(results) and len(results) >= space.samples
    best: dict[str, Any] | None = None
    if complete:
        best = _best_config(results)
        if best is not None and cfg.retrain_best:
            best = _retrain_best(best, ctx, cfg)
        tracking.finish_parent(tracking_uri, tctx.parent_run_id)
    return SweepSummary(
        sweep=sweep,
        kind="hpo",
        tracking_uri=tracking_uri,
        experiment_id=tctx.experiment_id,
        parent_run_id=tctx.parent_run_id,
        storage_path=storage_path,
        statuses=_statuses(tctx),
        complete=complete,
        best=best,
    )


def _best_config(results) -> dict[str, Any] | None:
    """The config with the highest validation LL seen by any trial (``best_val_ll`` reports)."""
    best_value, best = -math.inf, None
    for result in results:
        value = float((result.metrics or {}).get("best_val_ll", -math.inf))
        if math.isfinite(value) and value > best_value:
            best_value, best = value, dict(result.config)
            best["_val_ll"] = value
            best["_trial_id"] = str(result.metrics.get("trial_id", ""))
    return best


def _retrain_best(best: dict[str, Any], ctx: SweepContext, cfg: HpoConfig) -> dict[str, Any]:
    """Retrain the best config from scratch (full schedule, no ASHA) and evaluate it on test."""
    point = {k: v for k, v in best.items() if not k.startswith("_")}
    best_ctx = SweepContext(
        tracking=ctx.tracking,
        data=ctx.data,
        train=ctx.train,
        role="best",
        extra_params={**ctx.extra_params, "best_of_trial": best.get("_trial_id", "")},
    )
    task = ray.remote(run_logged).options(
        num_cpus=cfg.resources.cpus_per_trial, num_gpus=cfg.resources.gpus_per_trial
    )
    outcome = ray.get(task.remote(point, best_ctx, "best"))
    return {**best, "status": outcome.status, **outcome.metrics}
