"""One trial: build data and flow, time a step, train, evaluate, and log it all to MLflow.

:func:`execute` is plain Python (used by ``relgrad train`` and the HPO retrain); :func:`tune_trial`
wraps it as a Ray Tune function trainable that reports every evaluation to Tune and records the
trial as an MLflow child run (reused, not duplicated, when Tune retries or resumes the trial).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.schema import (
    FINAL_METRICS,
    FINISHED_STATUSES,
    ROLE_TRIAL,
    STATUS_DIVERGED,
    STATUS_FAILED,
    STATUS_OK,
    STATUS_RUNNING,
    TAG_GAUSSIAN_ABSENT,
    TAG_STATUS,
    TAG_STATUS_REASON,
    TAG_STOPPED_REASON,
    TAG_UNCOUNTED_OPS,
)
from study import tracking
from study.config import DataConfig, TrainConfig, flatten, to_dict
from study.measures import Metrics, held_out_metrics, measure_step
from study.tracking import TrackingContext
from study.worker import prepare_worker


@dataclass(frozen=True)
class SweepContext:
    """What every trial of a sweep shares (picklable; shipped with ``tune.with_parameters``)."""

    tracking: TrackingContext
    data: DataConfig
    train: TrainConfig
    role: str = ROLE_TRIAL
    inject_worker_kill: str | None = None  # testing: marker file, see `_maybe_kill_worker`
    extra_params: dict[str, str] = field(default_factory=dict)
    #: Grid sweeps: a point has one run whatever Tune trial runs it (see `tracking.find_child`).
    dedupe_points: bool = False

    def point_key(self, point: Mapping[str, Any]) -> str | None:
        return point_key(point) if self.dedupe_points else None


@dataclass
class TrialOutcome:
    status: str  # one of analysis.schema.STATUSES
    reason: str
    metrics: Metrics
    steps: int = 0
    tags: dict[str, str] = field(default_factory=dict)  # set on the run with its final status

    @property
    def stopped_reason(self) -> str:
        """relgrad_core's ``History.stopped_reason`` ("" when training did not end)."""
        return self.tags.get(TAG_STOPPED_REASON, "")


def point_key(point: Mapping[str, Any]) -> str:
    """A short stable id of a grid point (its parameters, canonical JSON, hashed)."""
    canonical = json.dumps({str(k): point[k] for k in point}, sort_keys=True, default=str)
    return hashlib.sha1(canonical.encode()).hexdigest()[:16]


def trial_params(
    point: Mapping[str, Any], data: DataConfig, train: TrainConfig, device: str | None = None
) -> dict[str, str]:
    """Child-run params: the schema's names first, then the rest of the config, flattened.

    ``device`` is the device the trial resolved (``cuda:0``); the configured one otherwise.
    """
    params = {
        "method": point["method"],
        "dim": point["dim"],
        "depth": point["depth"],
        "batch_size": point["batch_size"],
        "lr": point["lr"],
        "alpha": point["alpha"],
        "dataset": data.dataset,
        "device": device or train.device,
        "dtype": train.dtype,
        "seed": point.get("seed", 0),
    }
    rest = flatten({"data": to_dict(data), "train": to_dict(train)})
    return {k: str(v) for k, v in {**rest, **params}.items()}


def build_dataset(
    name: str, dim: int | None, data: DataConfig, *, seed: int, alpha: float, dtype, device="cpu"
):
    """Generate ``teacher``/``noise`` data at ``dim`` (the teacher on ``device``: its O(D³) set-up is
    worth a GPU at large D), or load a named data set."""
    from relgrad_core import load_data_file, load_dataset

    if data.file is not None:  # --data-file: the absolute path the driver has already checked
        return load_data_file(data.file, seed=seed, standardize=data.standardize, dtype=dtype)
    if name == "teacher":
        return load_dataset(
            "teacher",
            dim=dim,
            depth=data.teacher_depth,
            n_train=data.n_train,
            n_val=data.n_val,
            n_test=data.n_test,
            alpha=alpha,
            seed=seed,
            dtype=dtype,
            device=device,
        )
    if name == "noise":
        return load_dataset(
            "noise",
            dim=dim,
            n_train=data.n_train,
            n_val=data.n_val,
            n_test=data.n_test,
            seed=seed,
            dtype=dtype,
        )
    return load_dataset(name, root=data.root, seed=seed, dtype=dtype)


def execute(
    point: Mapping[str, Any],
    data: DataConfig,
    train: TrainConfig,
    *,
    on_timing: Callable[[Metrics], None] | None = None,
    on_record: Callable[[Metrics, int], bool | None] | None = None,
    on_tags: Callable[[dict[str, str]], None] | None = None,
    progress: bool = False,
) -> TrialOutcome:
    """Time one step of ``point['method']`` at ``point['dim']``, count its work, then train and evaluate.

    Timing: ``time_step`` median / min / IQR of a full step (gradient + Adam update) on one batch,
    and the peak memory; it restores the weights, so training starts from the initialisation.
    Counting: ``count_step`` FLOPs and bytes of the same step on the same batch (no clock; weights
    restored too); operations it cannot count go to ``on_tags`` as the ``uncounted_ops`` tag.
    Training: ``fit`` with ``on_record(metrics, step)`` after each evaluation (``train_ll``, ``val_ll``,
    ``train_data_nll``, ``train_time_s``; ``step`` = cumulative training steps). A non-finite loss gives
    status ``diverged``; anything else that goes wrong propagates.
    """
    from relgrad_core import Diverged, fit

    dataset, flow = _dataset_and_flow(point, data, train)
    batch_size = int(point["batch_size"])
    reps = -(-batch_size // len(dataset.train))  # tile a small training set up to one batch
    metrics, uncounted = measure_step(flow, dataset.train.repeat(reps, 1)[:batch_size], point, train)
    if uncounted and on_tags is not None:
        on_tags({TAG_UNCOUNTED_OPS: ",".join(uncounted)})
    if on_timing is not None:
        on_timing(dict(metrics))

    def callback(record) -> bool | None:
        values = {
            "train_ll": float(record.train_ll),
            "val_ll": float(record.val_ll),
            "train_data_nll": float(record.train_data_nll),
            "train_time_s": float(record.train_time_s),
        }
        metrics.update(values)
        return on_record(values, int(record.step)) if on_record is not None else None

    try:
        history = fit(
            flow,
            dataset,
            method=point["method"],
            lr=float(point["lr"]),
            batch_size=batch_size,
            epochs=train.epochs,
            patience=train.patience,
            optimizer=train.optimizer,
            callback=callback,
            steps_per_epoch=train.steps_per_epoch,
            max_steps=train.max_steps,
            time_budget_s=train.time_budget_s,
            seed=int(point.get("seed", 0)),
            progress=progress,
        )
    except Diverged as exc:
        return TrialOutcome(STATUS_DIVERGED, str(exc), metrics, steps=int(exc.step))
    tested, absent = held_out_metrics(flow, dataset)
    metrics.update(tested)
    tags = {TAG_GAUSSIAN_ABSENT: absent, TAG_STOPPED_REASON: history.stopped_reason}
    reason = f"trained {history.steps} steps, stopped by {history.stopped_reason}"
    if not math.isfinite(tested["test_ll"]):
        return TrialOutcome(STATUS_DIVERGED, f"{reason}; non-finite test LL", metrics, history.steps, tags)
    return TrialOutcome(STATUS_OK, reason, metrics, history.steps, tags)


def _dataset_and_flow(point: Mapping[str, Any], data: DataConfig, train: TrainConfig) -> tuple[Any, Any]:
    """The point's data set and its untrained flow, in the dtype and on the device ``train`` names."""
    import torch

    from relgrad_core import make_flow, resolve_device

    dtype = torch.float64 if train.dtype == "float64" else torch.float32
    device = resolve_device(train.device)
    seed = int(point.get("seed", 0))
    alpha = float(point["alpha"])
    dataset = build_dataset(
        data.dataset, point.get("dim"), data, seed=seed, alpha=alpha, dtype=dtype, device=device
    )
    flow = make_flow(
        point["method"], dataset.dim, int(point["depth"]), alpha=alpha, device=device, dtype=dtype, seed=seed
    )
    return dataset, flow


def _maybe_kill_worker(marker: str | None) -> None:
    """Testing hook: the first trial to get here SIGKILLs its own worker (a real process death)."""
    if not marker:
        return
    path = Path(marker)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def run_name(point: Mapping[str, Any], role: str = ROLE_TRIAL) -> str:
    """``relative-d64-L2-B64-lr0.001``, with ``-s1`` appended for a seed other than 0; a run of another
    role (an HPO retrain) is prefixed with it (``best-relative-...``)."""
    seed = int(point.get("seed", 0))
    name = f"{point['method']}-d{point['dim']}-L{point['depth']}-B{point['batch_size']}-lr{point['lr']:g}"
    name = f"{name}-s{seed}" if seed else name
    return name if role == ROLE_TRIAL else f"{role}-{name}"


def run_logged(
    point: Mapping[str, Any],
    ctx: SweepContext,
    trial_id: str,
    *,
    report: Callable[[dict[str, Any]], None] | None = None,
    progress: bool = False,
) -> TrialOutcome:
    """Run :func:`execute` as an MLflow child run of the sweep, reporting to ``report`` if given.

    Reports carry the timing metrics and the latest training metrics, plus ``status``. How a trial
    that does not end by itself is recorded:

    - Tune stops it (``SystemExit`` out of ``report``): either the scheduler (ASHA) stopped it, and the
      driver's finaliser has already recorded it ``ok`` before Tune signals the stop, or the sweep is
      shutting down (Ctrl-C): then it is ``interrupted``;
    - ``KeyboardInterrupt`` (a SIGINT reaching the worker): ``interrupted``;
    - any other exception: ``failed``, re-raised so that Tune's FailureConfig retries it (same run).

    ``interrupted`` and ``failed`` trials are re-run on ``--resume``, in the same run.
    """
    key = ctx.point_key(point)
    done = _finished_earlier(ctx, trial_id, key)
    if done is not None:
        if report is not None:
            report({**done.metrics, TAG_STATUS: done.status, "step": done.steps})
        return done
    live = _LiveRun(ctx.tracking.tracking_uri, _start_child_run(point, ctx, trial_id, key), report)
    try:
        _maybe_kill_worker(ctx.inject_worker_kill)
        outcome = execute(
            point,
            ctx.data,
            ctx.train,
            on_timing=live.on_timing,
            on_record=live.on_record,
            on_tags=live.on_tags,
            progress=progress,
        )
    except SystemExit:
        if not _ended_by_driver(live.uri, live.run_id):
            tracking.mark_interrupted(
                live.uri,
                live.run_id,
                f"stopped by Tune after {live.evaluations} evaluations: the sweep was interrupted",
            )
        raise
    except KeyboardInterrupt:
        tracking.mark_interrupted(
            live.uri, live.run_id, f"interrupted by the user after {live.evaluations} evaluations"
        )
        raise
    except BaseException as exc:
        # Recorded, then re-raised so that Tune's FailureConfig can retry the trial (same run).
        message = f"{type(exc).__name__}: {exc}"
        tracking.finish_child(live.uri, live.run_id, STATUS_FAILED, message, run_status="FAILED")
        raise
    live.finish(outcome)
    return outcome


def _start_child_run(point: Mapping[str, Any], ctx: SweepContext, trial_id: str, key: str | None) -> str:
    """The trial's MLflow child run (reused when Tune retries or resumes it), with its params and the
    environment tags; torch seeded with the point's seed. Returns its id."""
    import torch

    device = str(_device_for(ctx.train.device))
    params = {**trial_params(point, ctx.data, ctx.train, device), **ctx.extra_params}
    run_id = tracking.start_child(
        ctx.tracking, trial_id, params, role=ctx.role, run_name=run_name(point, ctx.role), point_key=key
    )
    tracking.set_tags(
        ctx.tracking.tracking_uri, run_id, tracking.environment_tags(device) | {"pid": str(os.getpid())}
    )
    torch.manual_seed(int(point.get("seed", 0)))
    return run_id


class _LiveRun:
    """A running trial's child run: each timing and evaluation goes to MLflow and, through ``report``, to
    Tune. ``latest`` is what Tune last heard (the timing, the newest training metrics, the best validation
    LL so far, the status); ``evaluations`` how many there were (said when the trial is cut short)."""

    def __init__(self, uri: str, run_id: str, report: Callable[[dict[str, Any]], None] | None) -> None:
        self.uri, self.run_id, self.report = uri, run_id, report
        self.latest: dict[str, Any] = {TAG_STATUS: STATUS_RUNNING}
        self.evaluations = 0

    def on_timing(self, metrics: Metrics) -> None:
        tracking.log_metrics(self.uri, self.run_id, metrics, step=0)
        self.latest.update(metrics)

    def on_record(self, metrics: Metrics, step: int) -> None:
        self.evaluations += 1
        tracking.log_metrics(self.uri, self.run_id, metrics, step=step)
        best = max(float(self.latest.get("best_val_ll", -math.inf)), metrics["val_ll"])
        self.latest.update(metrics, step=step, best_val_ll=best)
        if self.report is not None:
            self.report(dict(self.latest))

    def on_tags(self, tags: dict[str, str]) -> None:
        tracking.set_tags(self.uri, self.run_id, tags)

    def finish(self, outcome: TrialOutcome) -> None:
        """Record how the trial ended: the final metrics at its last step, its tags and status; the last
        report (a diverged trial's validation LL is the worst possible, so that it is never a "best")."""
        final = {k: v for k, v in outcome.metrics.items() if k in FINAL_METRICS}
        tracking.log_metrics(self.uri, self.run_id, final, step=max(outcome.steps, 0))
        if outcome.tags:
            tracking.set_tags(self.uri, self.run_id, outcome.tags)
        tracking.finish_child(self.uri, self.run_id, outcome.status, outcome.reason)
        if self.report is not None:
            result = {**self.latest, **outcome.metrics, TAG_STATUS: outcome.status}
            if outcome.status == STATUS_DIVERGED:
                result["val_ll"] = -math.inf  # worst possible for ASHA/Optuna, never a "best"
            self.report(result)


def _ended_by_driver(tracking_uri: str, run_id: str) -> bool:
    """Whether the driver already gave this run a final status (a scheduler's early stop)."""
    run = tracking.with_retry(lambda: tracking.client_for(tracking_uri).get_run(run_id))
    return run.data.tags.get(TAG_STATUS) in FINISHED_STATUSES


def _finished_earlier(ctx: SweepContext, trial_id: str, key: str | None = None) -> TrialOutcome | None:
    """The outcome of this trial if an earlier attempt already finished it.

    A trial can end in MLflow just before the sweep is interrupted and Tune records it; on
    ``--resume`` Tune starts it again. Its run is complete, so it is reported, not re-run.
    Interrupted and failed runs are not finished: they are run again.
    """
    run = tracking.find_child(ctx.tracking, trial_id, key)
    if run is None or run.info.status != "FINISHED":
        return None
    status = run.data.tags.get(TAG_STATUS)
    if status not in (STATUS_OK, STATUS_DIVERGED):
        return None
    metrics = dict(run.data.metrics)
    if status == STATUS_DIVERGED:
        metrics["val_ll"] = -math.inf
    if "val_ll" in metrics:
        metrics.setdefault("best_val_ll", metrics["val_ll"])
    return TrialOutcome(status, run.data.tags.get(TAG_STATUS_REASON, ""), metrics, steps=0)


def _device_for(device: str):
    from relgrad_core import resolve_device

    return resolve_device(device)


def tune_trial(config: dict[str, Any], ctx: SweepContext) -> None:
    """Ray Tune function trainable (wrap with ``tune.with_parameters(tune_trial, ctx=...)``)."""
    from ray import tune

    trial_id = tune.get_context().get_trial_id()
    prepare_worker()
    _pin_threads_to_assigned_cpus()
    run_logged(config, ctx, trial_id, report=tune.report)


def run_in_worker(point: Mapping[str, Any], ctx: SweepContext, trial_id: str) -> TrialOutcome:
    """:func:`run_logged` as a Ray task (the HPO retrain, ``relgrad train --address``)."""
    prepare_worker()
    return run_logged(point, ctx, trial_id)


def _pin_threads_to_assigned_cpus() -> None:
    """Give torch as many threads as Ray gave this trial CPUs, so concurrent trials on one node do not
    oversubscribe the cores and distort each other's step timings."""
    import ray
    import torch

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    if cpus:
        torch.set_num_threads(max(1, int(cpus)))
