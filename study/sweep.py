"""Scaling and HPO sweeps on Ray Tune, tracked in MLflow (the driver side).

The driver validates, creates the MLflow experiment and the sweep's parent run before any trial
(sqlite creation races), launches trials with :func:`study.trial.tune_trial`, and finalises child
runs the trial process could not finish itself (a worker that died, a trial ASHA stopped, a trial
cut by Ctrl-C). What it guarantees:

- one MLflow child run per trial, whatever happens: retries, resumes and re-suggested grid points
  reuse it;
- a trial is ``ok`` only when it ran to its end or the scheduler stopped it early; a trial cut by an
  interrupt or by the death of the driver is ``interrupted`` and runs again, in the same run, on
  ``--resume``; a resume first marks the dead driver's RUNNING children ``interrupted``;
- the tracking store failing beyond its client's retries stops the sweep cleanly (resumable);
- :attr:`SweepSummary.exit_code`: 0 when every trial ended ok / diverged / skipped, 1 when some
  failed, 130 when the sweep was cut short (interrupt, tracking outage): ``--resume`` continues it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune import ResultGrid, Tuner
from ray.tune.result import TRIAL_ID

from analysis.schema import (
    DEFAULT_EXPERIMENT,
    FINISHED_STATUSES,
    ROLE_DEFAULT,
    STATUS_FAILED,
    STATUS_INTERRUPTED,
    STATUS_RUNNING,
    TAG_ROLE,
    TAG_STATUS,
)
from study import console, preflight, retrain, signals, tracking
from study.config import (
    ConfigError,
    HpoConfig,
    ScalingConfig,
    to_dict,
    tracked_params,
    validate_hpo,
    validate_scaling,
)
from study.curves import CurveAxes, top_up_curves
from study.finalise import SweepSummary, reset_problem
from study.kinds import SCALING, TUNE, SweepKind, by_kind
from study.measures import matmul_peak_record
from study.searcher import BudgetedGridSearcher
from study.store import storage_fs
from study.tracking import TrackingContext
from study.trial import SweepContext, tune_trial
from study.tune_callbacks import run_config, tune_output

logger = logging.getLogger(__name__)

SWEEP_FILE_SUFFIX = ".relgrad.json"
#: Statuses with which a trial has ended for good (failed ones are re-run only by a resume).
ENDED_STATUSES: tuple[str, ...] = (*FINISHED_STATUSES, STATUS_FAILED)


# --------------------------------------------------------------------------------------------
# Shared driver plumbing
# --------------------------------------------------------------------------------------------
def sweep_file(storage_path: str, sweep: str) -> str:
    return f"{storage_path.rstrip('/')}/{sweep}{SWEEP_FILE_SUFFIX}"


@dataclass(frozen=True)
class SavedSweep:
    """What a sweep was started with, saved beside its Tune results: ``--resume`` needs no other flags.

    ``kind`` is the parent run's kind tag; ``config`` the config as a nested dict.
    """

    kind: str
    config: dict[str, Any]
    experiment: str = DEFAULT_EXPERIMENT


def save_sweep(storage_path: str, sweep: str, saved: SavedSweep) -> None:
    filesystem, path = storage_fs(sweep_file(storage_path, sweep))
    with filesystem.open_output_stream(path) as handle:
        handle.write(json.dumps(dataclasses.asdict(saved), indent=1).encode())


def load_saved_sweep(storage_path: str, sweep: str) -> SavedSweep:
    """The kind, config and experiment a sweep was started with."""
    from pyarrow import fs

    filesystem, path = storage_fs(sweep_file(storage_path, sweep))
    if filesystem.get_file_info(path).type != fs.FileType.File:
        raise ConfigError(f"--resume: no sweep named {sweep!r} under {storage_path}")
    with filesystem.open_input_stream(path) as handle:
        raw = json.loads(handle.read().decode())
    fields = {f.name for f in dataclasses.fields(SavedSweep)}
    return SavedSweep(**{k: v for k, v in raw.items() if k in fields})


def prepare_tracking(
    tracking_uri: str, experiment: str, sweep: str, kind: str, params: dict[str, str], resume: bool
) -> TrackingContext:
    """Create (or, on resume, take over) the experiment and the sweep's parent run.

    On resume the previous driver is gone, so any child run it left RUNNING is stale: it is marked
    ``interrupted`` (and its trial runs again, in that run).
    """
    from relgrad_core.machine import git_commit

    tracking.check_sweep_name(sweep)
    experiment_id = tracking.ensure_experiment(tracking_uri, experiment)
    parent = tracking.find_parent(tracking_uri, experiment_id, sweep)
    if resume:
        if parent is None:
            raise ConfigError(f"--resume: sweep {sweep!r} has no parent run in {tracking_uri}")
        parent_id = tracking.resume_parent(tracking_uri, parent)
        stale = tracking.reconcile_running(
            tracking_uri, experiment_id, sweep, "its driver ended while it ran (found RUNNING on --resume)"
        )
        if stale:
            logger.warning("sweep %s: %d trial(s) of a dead driver marked interrupted", sweep, stale)
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
        git_commit=git_commit(),
    )


def _statuses(ctx: TrackingContext, role: str | None = None) -> dict[str, int]:
    runs = tracking.child_runs(ctx.tracking_uri, ctx.experiment_id, ctx.sweep)
    if role is not None:
        runs = [r for r in runs if r.data.tags.get(TAG_ROLE) == role]
    return dict(Counter(r.data.tags.get(TAG_STATUS, STATUS_RUNNING) for r in runs))


def _trainable(ctx: SweepContext, cpus: float, gpus: float):
    return tune.with_resources(tune.with_parameters(tune_trial, ctx=ctx), {"cpu": cpus, "gpu": gpus})


@dataclass
class _Plan:
    """What differs between sweep kinds: how to build a fresh Tuner, how many trials end a sweep."""

    ctx: SweepContext
    expected: int
    new_tuner: Callable[[Any], Tuner]
    restart_errored: bool
    verbose: bool = False
    axes: CurveAxes = field(default_factory=CurveAxes)


def _execute(plan: _Plan, *, storage_path: str, resume: bool, cpus: float, gpus: float) -> tuple:
    """The shared skeleton: fit a new or restored Tuner, reconcile the runs, say how it ended.

    Returns ``(results or None, statuses, complete, problem)``.
    """
    tctx = plan.ctx.tracking
    sweep = tctx.sweep
    reset_problem(sweep)
    trainable = _trainable(plan.ctx, cpus, gpus)
    if resume:
        tuner = Tuner.restore(
            f"{storage_path.rstrip('/')}/{sweep}", trainable=trainable, restart_errored=plan.restart_errored
        )
    else:
        tuner = plan.new_tuner(trainable)
    results: ResultGrid | None = None
    interrupted = False
    done_before = sum(n for s, n in _statuses(tctx, role=plan.ctx.role).items() if s in ENDED_STATUSES)
    console.open_console(sweep, plan.expected, done_before)
    try:
        with signals.tune_fit(), tune_output(plan.verbose):  # a SIGTERM stops Tune as its first Ctrl-C
            results = tuner.fit()
    except KeyboardInterrupt:  # a second Ctrl-C (or SIGTERM) while Tune was shutting down
        interrupted = True
    finally:
        console.close_console(sweep)
    try:
        # Every trial process is gone now: a run still RUNNING was cut short.
        tracking.reconcile_running(tctx.tracking_uri, tctx.experiment_id, sweep, "the sweep was interrupted")
        statuses = _statuses(tctx, role=plan.ctx.role)
    except Exception as exc:  # the store itself is down
        tracking.note_problem(sweep, exc)
        statuses = {}
    problem = tracking.problem(sweep)
    ended = sum(n for s, n in statuses.items() if s in ENDED_STATUSES)
    complete = (
        not interrupted and problem is None and ended >= plan.expected and STATUS_INTERRUPTED not in statuses
    )
    if problem is not None:
        problem = f"the tracking store {tctx.tracking_uri} failed ({problem})"
    if complete:  # the curves hold every ok trial (a cut sweep is topped up when its resume completes)
        top_up_curves(tctx, plan.axes)
    return results, statuses, complete, problem


def _close_parent(tctx: TrackingContext, complete: bool) -> None:
    """FINISHED when every trial ended; KILLED while the sweep can still be resumed."""
    try:
        tracking.finish_parent(
            tctx.tracking_uri, tctx.parent_run_id, run_status=None if complete else "KILLED"
        )
    except Exception as exc:
        tracking.note_problem(tctx.sweep, exc)


def _summary(tctx: TrackingContext, storage_path: str, statuses: dict[str, int], **kw: Any) -> SweepSummary:
    return SweepSummary(
        sweep=tctx.sweep,
        kind=by_kind(tctx.kind),
        tracking_uri=tctx.tracking_uri,
        experiment_id=tctx.experiment_id,
        parent_run_id=tctx.parent_run_id,
        storage_path=storage_path,
        statuses=statuses,
        **kw,
    )


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
    verbose: bool = False,
) -> SweepSummary:
    """Run (or resume) a budget-aware scaling sweep (Ray initialised by the caller); ``verbose``: Tune's
    own progress tables too."""
    validate_scaling(cfg)
    storage_path = preflight.check_storage(storage_path, sweep, resume)
    preflight.check_ray_resources(cfg.resources.cpus_per_trial, cfg.resources.gpus_per_trial)
    tctx = prepare_tracking(tracking_uri, experiment, sweep, SCALING.kind, tracked_params(cfg), resume)
    ctx = SweepContext(
        tracking=tctx,
        data=cfg.data,
        train=cfg.train,
        inject_worker_kill=cfg.inject_worker_kill,
        extra_params={"sweep_kind": SCALING.kind}
        | ({} if cfg.budget_s is None else {"budget_s": str(cfg.budget_s)}),
        dedupe_points=True,
    )
    points = cfg.points()
    if not resume:
        log_matmul_peak(tctx, cfg)

    def new_tuner(trainable: Any) -> Tuner:
        save_sweep(storage_path, sweep, SavedSweep(SCALING.kind, to_dict(cfg), experiment))
        budgets = {m: cfg.budget_for(m) for m in cfg.methods}
        return Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=BudgetedGridSearcher(points, budgets, ctx),
                num_samples=len(points),
                max_concurrent_trials=cfg.resources.max_concurrent,
                reuse_actors=True,
            ),
            run_config=run_config(
                sweep, storage_path, cfg.resources.max_failures, ctx, axes, verbose=verbose
            ),
        )

    axes = CurveAxes.of(cfg.depths, cfg.batch_sizes)
    plan = _Plan(ctx, len(points), new_tuner, SCALING.reruns_failed, verbose=verbose, axes=axes)
    _, statuses, complete, problem = _execute(
        plan,
        storage_path=storage_path,
        resume=resume,
        cpus=cfg.resources.cpus_per_trial,
        gpus=cfg.resources.gpus_per_trial,
    )
    _close_parent(tctx, complete)
    return _summary(tctx, storage_path, statuses, complete=complete, problem=problem)


def log_matmul_peak(tctx: TrackingContext, cfg: ScalingConfig) -> None:
    """The machine's matrix-multiply peak, measured once per sweep where a trial runs (a Ray task with a
    trial's CPUs and GPUs) and logged on the parent run; a failure is a warning, never the sweep's end."""
    if cfg.matmul_peak_size == 0:
        return
    res = cfg.resources
    task = ray.remote(matmul_peak_record).options(num_cpus=res.cpus_per_trial, num_gpus=res.gpus_per_trial)
    try:
        metrics, tags = ray.get(
            task.remote(cfg.train.device, cfg.train.dtype, cfg.matmul_peak_size, res.cpus_per_trial)
        )
        tracking.log_metrics(tctx.tracking_uri, tctx.parent_run_id, metrics)
        tracking.set_tags(tctx.tracking_uri, tctx.parent_run_id, tags)
    except Exception as exc:  # the peak is context for the report, not a result
        logger.warning("sweep %s: the matrix-multiply peak was not measured: %s", tctx.sweep, exc)


# --------------------------------------------------------------------------------------------
# HPO
# --------------------------------------------------------------------------------------------
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
    verbose: bool = False,
) -> SweepSummary:
    """Optuna TPE + ASHA on exact validation LL, then retrain the best config and test it."""
    import optuna
    from ray.tune.schedulers import ASHAScheduler

    from study.optuna_search import PruningOptunaSearch

    validate_hpo(cfg)
    if not verbose:  # "A new study created in RDB ...": the console's lines say what happens
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    dim = preflight.data_dim(cfg.data, cfg.space.seed, TUNE.command)
    storage_path = preflight.check_storage(storage_path, sweep, resume)
    preflight.check_ray_resources(cfg.resources.cpus_per_trial, cfg.resources.gpus_per_trial)
    tctx = prepare_tracking(tracking_uri, experiment, sweep, TUNE.kind, tracked_params(cfg), resume)
    ctx = SweepContext(tracking=tctx, data=cfg.data, train=cfg.train, extra_params={"sweep_kind": TUNE.kind})
    space = cfg.space
    optuna_uri = optuna_storage_uri(tracking_uri)

    def new_tuner(trainable: Any) -> Tuner:
        save_sweep(storage_path, sweep, SavedSweep(TUNE.kind, to_dict(cfg), experiment))
        distributions = {
            "lr": optuna.distributions.FloatDistribution(space.lr_min, space.lr_max, log=True),
            "depth": optuna.distributions.CategoricalDistribution(list(space.depths)),
            "alpha": optuna.distributions.FloatDistribution(space.alpha_min, space.alpha_max),
            "batch_size": optuna.distributions.CategoricalDistribution(list(space.batch_sizes)),
        }
        # metric/mode go to the searcher and scheduler themselves: an OptunaSearch built with its
        # own space ignores TuneConfig's (and creates its study, direction included, right away).
        searcher = PruningOptunaSearch(
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
        return Tuner(
            trainable,
            param_space={"method": space.method, "dim": dim, "seed": space.seed},
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=space.samples,
                max_concurrent_trials=cfg.resources.max_concurrent,
                reuse_actors=True,
            ),
            run_config=run_config(
                sweep, storage_path, cfg.resources.max_failures, ctx, axes, verbose=verbose
            ),
        )

    axes = CurveAxes.of(space.depths, space.batch_sizes)
    plan = _Plan(ctx, space.samples, new_tuner, TUNE.reruns_failed, verbose=verbose, axes=axes)
    results, statuses, complete, problem = _execute(
        plan,
        storage_path=storage_path,
        resume=resume,
        cpus=cfg.resources.cpus_per_trial,
        gpus=cfg.resources.gpus_per_trial,
    )
    best: dict[str, Any] | None = None
    if complete and results is not None:
        best = _best_config(results)
        if best is not None and cfg.retrain_best:  # runs of their own, counted apart from the trials
            best = retrain.best(best, ctx, cfg)
            best[ROLE_DEFAULT] = retrain.default(dim, ctx, cfg)
    _close_parent(tctx, complete)
    return _summary(tctx, storage_path, statuses, complete=complete, problem=problem, best=best)


def _best_config(results: ResultGrid) -> dict[str, Any] | None:
    """The config with the highest validation LL seen by any trial (its ``best_val_ll`` reports)."""
    try:
        result = results.get_best_result(metric="best_val_ll", mode="max", scope="all")
    except (RuntimeError, ValueError, KeyError):  # no trial reported a finite value
        return None
    value = (result.metrics or {}).get("best_val_ll")
    if result.config is None or value is None:
        return None
    best = dict(result.config)
    best["_val_ll"] = float(value)
    best["_trial_id"] = str(result.metrics.get(TRIAL_ID, ""))  # Tune's own result key
    return best


def run_sweep(kind: SweepKind, cfg: ScalingConfig | HpoConfig, **options: Any) -> SweepSummary:
    """Run (or resume) a sweep of ``kind`` (:func:`run_scaling` or :func:`run_hpo`, same options)."""
    runners: dict[SweepKind, Callable[..., SweepSummary]] = {SCALING: run_scaling, TUNE: run_hpo}
    return runners[kind](cfg, **options)
