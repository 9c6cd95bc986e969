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
    PEAK_METRIC,
    ROLE_TRIAL,
    STATUS_DIVERGED,
    STATUS_FAILED,
    STATUS_OK,
    STATUS_RUNNING,
    TAG_DEVICE_NAME,
    TAG_GAUSSIAN_ABSENT,
    TAG_MATMUL_PEAK_DEVICE,
    TAG_MATMUL_PEAK_SIZE,
    TAG_MATMUL_PEAK_THREADS,
    TAG_STATUS,
    TAG_STATUS_REASON,
    TAG_STOPPED_REASON,
    TAG_UNCOUNTED_OPS,
)
from study import tracking
from study.config import DataConfig, TrainConfig, flatten, to_dict
from study.tracking import TrackingContext
from study.worker import prepare_worker

Metrics = dict[str, float]


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
    import torch

    from relgrad_core import Diverged, evaluate_nll, fit, flop_ratio, make_flow, resolve_device, time_step
    from relgrad_core.counting import count_step

    dtype = torch.float64 if train.dtype == "float64" else torch.float32
    device = resolve_device(train.device)
    seed = int(point.get("seed", 0))
    dataset = build_dataset(
        data.dataset,
        point.get("dim"),
        data,
        seed=seed,
        alpha=float(point["alpha"]),
        dtype=dtype,
        device=device,
    )
    flow = make_flow(
        point["method"],
        dataset.dim,
        int(point["depth"]),
        alpha=float(point["alpha"]),
        device=device,
        dtype=dtype,
        seed=seed,
    )
    batch_size = int(point["batch_size"])
    reps = -(-batch_size // len(dataset.train))  # tile a small training set up to one batch
    batch = dataset.train.repeat(reps, 1)[:batch_size]
    # The step's cost does not depend on the learning rate; a fixed one keeps timing finite.
    timing = time_step(
        flow,
        batch,
        point["method"],
        warmup=train.timing_warmup,
        repeats=train.timing_repeats,
        optimizer=train.optimizer,
        lr=1e-3,
    )
    count = count_step(flow, batch, point["method"], optimizer=train.optimizer, warn=False)
    metrics: Metrics = {
        **timing_metrics(timing),
        **counted_metrics(count),
        "flop_ratio": flop_ratio(point["method"], int(point["depth"])),
    }
    if count.uncounted and on_tags is not None:
        on_tags({TAG_UNCOUNTED_OPS: ",".join(count.uncounted)})
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
            seed=seed,
            progress=progress,
        )
    except Diverged as exc:
        return TrialOutcome(STATUS_DIVERGED, str(exc), metrics, steps=int(exc.step))
    test_ll = -evaluate_nll(flow, dataset.test.to(device=device, dtype=dtype))
    metrics["test_ll"] = test_ll
    # test_ll, val_ll and the yardstick are on the tensors the flow sees; the data set quotes its LLs in
    # its own space (e.g. digits: logit space before standardisation), a constant ll_offset away
    metrics["ll_offset"] = dataset.ll_offset
    metrics["reported_test_ll"] = dataset.reported_ll(test_ll)
    if dataset.true_test_ll is not None:
        metrics["true_test_ll"] = float(dataset.true_test_ll)
        metrics["kl_gap"] = float(dataset.true_test_ll) - test_ll
    yardstick, absent = gaussian_yardstick(dataset)
    if yardstick is not None:
        metrics["gaussian_test_ll"] = yardstick
        metrics["reported_gaussian_test_ll"] = dataset.reported_ll(yardstick)
        metrics["gain_over_gaussian"] = test_ll - yardstick
    tags = {TAG_GAUSSIAN_ABSENT: absent, TAG_STOPPED_REASON: history.stopped_reason}
    reason = f"trained {history.steps} steps, stopped by {history.stopped_reason}"
    if not math.isfinite(test_ll):
        return TrialOutcome(STATUS_DIVERGED, f"{reason}; non-finite test LL", metrics, history.steps, tags)
    return TrialOutcome(STATUS_OK, reason, metrics, history.steps, tags)


#: Above this many multiply-adds (n_train·D²) the Gaussian yardstick is left out where the exact LL is
#: known: at D = 4096 on teacher data it would cost a CPU trial more than its whole training budget.
GAUSSIAN_YARDSTICK_MAX_MACS = 2e9


def gaussian_yardstick(dataset: Any) -> tuple[float | None, str]:
    """``(value, "")``: the test LL (on the tensors, like ``test_ll``) of a full-covariance Gaussian fitted
    on train; or ``(None, why)`` when there is none, ``why`` being recorded in the run's
    ``TAG_GAUSSIAN_ABSENT`` tag (the yardstick is never silently absent).

    Every data set without a known true LL gets it (its only yardstick); synthetic ones when cheap.
    It cannot be fitted when the training covariance is singular (e.g. fewer samples than dimensions).
    """
    from relgrad_core import gaussian_test_ll

    n, dim = dataset.train.shape
    if dataset.true_test_ll is not None and n * dim * dim > GAUSSIAN_YARDSTICK_MAX_MACS:
        return None, (
            f"not computed: its fit costs n_train·D² = {n * dim * dim:.3g} multiply-adds (over "
            f"{GAUSSIAN_YARDSTICK_MAX_MACS:g}) and the true test LL is known"
        )
    try:
        value = float(gaussian_test_ll(dataset, reported=False))
    except ValueError as exc:
        return None, f"cannot be fitted: {exc}"
    return (value, "") if math.isfinite(value) else (None, f"its test LL is not finite ({value})")


def timing_metrics(timing: Any) -> Metrics:
    """The schema's timing metrics of a ``relgrad_core.StepTiming`` (NaN: the OS gives no load average)."""
    return {
        "sec_per_iter": float(timing.median),
        "sec_per_iter_min": float(timing.min),
        "sec_per_iter_iqr": float(timing.iqr),
        "timing_repeats": float(timing.repeats),
        "timing_retimed": float(bool(timing.retimed)),
        "load_avg_1m": float(timing.load_avg_1m),
        "peak_mem_mb": timing.peak_mem_bytes / 2**20,
    }


def counted_metrics(count: Any) -> Metrics:
    """The schema's counted-work metrics of a ``relgrad_core.counting.StepCount``."""
    return {
        "flops_per_step": float(count.flops),
        "flops_cubic_per_step": float(count.flops_cubic),
        "bytes_per_step": float(count.bytes),
    }


def matmul_peak_record(
    device: str, dtype: str, size: int | None, cpus: float
) -> tuple[Metrics, dict[str, str]]:
    """Measure the matrix-multiply peak where a trial runs (its device, dtype and CPU threads): the parent
    run's metric and tags. Run as a Ray task with a trial's resources (see ``study.sweep``)."""
    import torch

    from relgrad_core.timing import matmul_peak

    torch.set_num_threads(max(1, int(cpus)))
    peak = matmul_peak(device, torch.float64 if dtype == "float64" else torch.float32, size=size)
    tags = {
        TAG_MATMUL_PEAK_SIZE: str(peak.size),
        TAG_MATMUL_PEAK_DEVICE: tracking.environment_tags(peak.device)[TAG_DEVICE_NAME],
        TAG_MATMUL_PEAK_THREADS: str(peak.threads),
    }
    return {PEAK_METRIC: peak.gflops}, tags


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
    import torch

    uri = ctx.tracking.tracking_uri
    key = ctx.point_key(point)
    done = _finished_earlier(ctx, trial_id, key)
    if done is not None:
        if report is not None:
            report({**done.metrics, TAG_STATUS: done.status, "step": done.steps})
        return done
    device = str(_device_for(ctx.train.device))
    params = {**trial_params(point, ctx.data, ctx.train, device), **ctx.extra_params}
    run_id = tracking.start_child(
        ctx.tracking, trial_id, params, role=ctx.role, run_name=run_name(point, ctx.role), point_key=key
    )
    tracking.set_tags(uri, run_id, tracking.environment_tags(device) | {"pid": str(os.getpid())})
    torch.manual_seed(int(point.get("seed", 0)))
    latest: dict[str, Any] = {TAG_STATUS: STATUS_RUNNING}
    evaluations = 0

    def on_timing(metrics: Metrics) -> None:
        tracking.log_metrics(uri, run_id, metrics, step=0)
        latest.update(metrics)

    def on_record(metrics: Metrics, step: int) -> None:
        nonlocal evaluations
        evaluations += 1
        tracking.log_metrics(uri, run_id, metrics, step=step)
        best = max(float(latest.get("best_val_ll", -math.inf)), metrics["val_ll"])
        latest.update(metrics, step=step, best_val_ll=best)
        if report is not None:
            report(dict(latest))

    try:
        _maybe_kill_worker(ctx.inject_worker_kill)
        outcome = execute(
            point,
            ctx.data,
            ctx.train,
            on_timing=on_timing,
            on_record=on_record,
            on_tags=lambda tags: tracking.set_tags(uri, run_id, tags),
            progress=progress,
        )
    except SystemExit:
        if not _ended_by_driver(uri, run_id):
            tracking.mark_interrupted(
                uri, run_id, f"stopped by Tune after {evaluations} evaluations: the sweep was interrupted"
            )
        raise
    except KeyboardInterrupt:
        tracking.mark_interrupted(uri, run_id, f"interrupted by the user after {evaluations} evaluations")
        raise
    except BaseException as exc:
        # Recorded, then re-raised so that Tune's FailureConfig can retry the trial (same run).
        message = f"{type(exc).__name__}: {exc}"
        tracking.finish_child(uri, run_id, STATUS_FAILED, message, run_status="FAILED")
        raise
    final = {k: v for k, v in outcome.metrics.items() if k in FINAL_METRICS}
    tracking.log_metrics(uri, run_id, final, step=max(outcome.steps, 0))
    if outcome.tags:
        tracking.set_tags(uri, run_id, outcome.tags)
    tracking.finish_child(uri, run_id, outcome.status, outcome.reason)
    if report is not None:
        result = {**latest, **outcome.metrics, TAG_STATUS: outcome.status}
        if outcome.status == STATUS_DIVERGED:
            result["val_ll"] = -math.inf  # worst possible for ASHA/Optuna, never a "best"
        report(result)
    return outcome


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
