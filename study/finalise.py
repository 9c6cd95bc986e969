"""How a sweep ends: the driver's Tune callbacks that finalise child runs, and the sweep's summary.

Runs on the driver. The callbacks never raise: a tracking failure is noted per sweep
(:func:`study.tracking.note_problem`) and :class:`TrackingOutageStopper` ends the sweep at Tune's next
step, resumable, instead of a traceback out of Tune's callback loop.
"""

from __future__ import annotations

import logging
import shlex
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.tune import Callback, Stopper

from analysis.schema import STATUS_FAILED, STATUS_INTERRUPTED, STATUS_OK, TAG_STATUS, TAG_STATUS_REASON
from study import tracking
from study.kinds import SweepKind
from study.parsing import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, PROG, error_line
from study.trial import SweepContext, run_name, trial_params

logger = logging.getLogger(__name__)


def resume_command(
    kind: SweepKind,
    sweep: str,
    *,
    tracking_uri: str,
    storage_path: str,
    experiment: str = tracking.DEFAULT_EXPERIMENT,
    address: str | None = None,
) -> str:
    """The command that continues ``sweep``, as the user should type it (shell-quoted): the one place
    the resume hint is built.

    It carries every flag needed to find the sweep again from the current directory: the MLflow store
    and Tune's storage path whenever they are not what a bare command would use here (a value from
    ``MLFLOW_TRACKING_URI`` is written out: the variable may be gone by then), a non-default experiment,
    and the Ray cluster the sweep ran on.
    """
    words = [PROG, kind.command, "--resume", "--name", sweep]
    if tracking_uri != tracking.default_tracking_uri():
        words += ["--tracking-uri", tracking_uri]
    if storage_path.rstrip("/") != tracking.default_storage_path():
        words += ["--storage-path", storage_path]
    if experiment != tracking.DEFAULT_EXPERIMENT:
        words += ["--experiment", experiment]
    if address:
        words += ["--address", address]
    return shlex.join(words)


@dataclass
class SweepSummary:
    """What a sweep did: status counts, whether every trial ended, and the exit code to return.

    ``complete`` is true when every trial of the sweep ended (ok, diverged, skipped or failed);
    ``problem`` says why it stopped short when that was not a user interrupt.
    """

    sweep: str
    kind: SweepKind
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    storage_path: str
    statuses: dict[str, int] = field(default_factory=dict)
    complete: bool = True
    best: dict[str, Any] | None = None
    problem: str | None = None
    experiment: str = tracking.DEFAULT_EXPERIMENT
    address: str | None = None  # the Ray cluster it ran on (None: embedded Ray)

    @property
    def exit_code(self) -> int:
        """0 every trial ended ok/diverged/skipped; 1 some failed; 130 cut short (resumable)."""
        if not self.complete:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.statuses.get(STATUS_FAILED, 0) else EXIT_OK

    @property
    def resume_command(self) -> str:
        return resume_command(
            self.kind,
            self.sweep,
            tracking_uri=self.tracking_uri,
            storage_path=self.storage_path,
            experiment=self.experiment,
            address=self.address,
        )

    def lines(self) -> list[str]:
        """The summary as text lines, for the CLI."""
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items()))
        if not counts:
            counts = (
                "trial statuses unknown (the tracking store is unreachable)" if self.problem else "no trials"
            )
        out = [f"sweep {self.sweep}: {counts}"]
        if self.problem:
            out.append(f"sweep stopped: {self.problem}")
        if not self.complete:
            out.append(f"sweep interrupted; continue it with: {self.resume_command}")
        elif self.statuses.get(STATUS_FAILED, 0):
            failed = f"{self.statuses[STATUS_FAILED]} trial(s) failed (reasons in their status_reason tag)"
            # A grid sweep re-runs failed trials on resume; Optuna has already recorded them as failed.
            rerun = self.kind.reruns_failed
            out.append(f"{failed}; re-run them with: {self.resume_command}" if rerun else failed)
        return out


class MlflowFinaliser(Callback):
    """Ends child runs that their trial process could not end (driver side).

    A worker killed outright never reaches the trial's own ``finally``; a trial stopped by the
    scheduler is cut between reports. Either way the run must not stay RUNNING forever. The
    callbacks never raise: a tracking failure is noted, and :class:`TrackingOutageStopper` ends the
    sweep at the next step (Tune would otherwise crash the driver with a traceback).
    """

    def __init__(self, ctx: SweepContext) -> None:
        self.ctx = ctx

    def _guarded(self, action: Callable[[Any], None], trial: Any) -> None:
        try:
            action(trial)
        except Exception as exc:  # the store is down beyond its client's retries
            logger.warning("tracking failed while finalising trial %s: %s", trial.trial_id, exc)
            stop_for_problem(self.ctx.tracking.sweep, exc)

    def _find(self, trial: Any):
        return tracking.find_child(self.ctx.tracking, trial.trial_id, self.ctx.point_key(trial.config))

    def _ensure_run(self, trial: Any) -> str:
        run = self._find(trial)
        if run is not None:
            return str(run.info.run_id)
        params = {**trial_params(trial.config, self.ctx.data, self.ctx.train), **self.ctx.extra_params}
        return tracking.start_child(
            self.ctx.tracking,
            trial.trial_id,
            params,
            role=self.ctx.role,
            run_name=run_name(trial.config),
            point_key=self.ctx.point_key(trial.config),
        )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._guarded(self._complete, trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._guarded(self._error, trial)

    def _complete(self, trial: Any) -> None:
        # Called before Tune signals the trial to stop: a run still running here was stopped early by
        # the scheduler (the trial itself records an interrupt, which never passes through here).
        if tracking.problem(self.ctx.tracking.sweep):
            return  # the sweep is being stopped because the store failed: not the scheduler's call
        run = self._find(trial)
        if run is not None and run.info.status == "RUNNING":
            evaluations = int((trial.last_result or {}).get("training_iteration", 0))
            tracking.finish_child(
                self.ctx.tracking.tracking_uri,
                str(run.info.run_id),
                STATUS_OK,
                f"stopped early by the scheduler after {evaluations} evaluations",
            )

    def _error(self, trial: Any) -> None:
        run_id = self._ensure_run(trial)
        run = tracking.client_for(self.ctx.tracking.tracking_uri).get_run(run_id)
        tags = run.data.tags
        if tags.get(TAG_STATUS) == STATUS_INTERRUPTED:
            return  # a SIGINT reached the worker: the trial recorded it; resume re-runs it
        if tags.get(TAG_STATUS) == STATUS_FAILED and tags.get(TAG_STATUS_REASON):
            return  # the trial recorded its own exception (type and message): keep it
        tracking.finish_child(
            self.ctx.tracking.tracking_uri, run_id, STATUS_FAILED, trial_error(trial), run_status="FAILED"
        )


def trial_error(trial: Any) -> str:
    """The error Tune recorded for ``trial``, as ``Type: message`` (one line), for a trial that could not
    record its own: its worker died, or the trial failed before its run existed.

    Tune writes the last error of a trial beside its results the moment it fails (``error.pkl``: the
    exception, a ``RayTaskError`` around the trial's own or a ``RayActorError`` when the worker process
    died; ``error.txt``: its text), first in the driver's staging folder, later in the storage path.
    """
    error = _pickled_error(trial)
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):  # a RayTaskError: the trial's own exception inside
        error = cause
    if isinstance(error, BaseException):
        return error_line(error)[:2000]
    lines = [line.strip() for line in _error_text(trial).splitlines() if line.strip()]
    return lines[-1][:2000] if lines else "the trial's worker failed (Tune recorded no error)"


def _pickled_error(trial: Any) -> object:
    """The exception object Tune saved for ``trial`` (written by this driver's own Tune), or None."""
    import cloudpickle

    path = getattr(trial, "pickled_error_file", None)  # the driver's staging copy: there at once
    try:
        if path and Path(path).is_file():
            with open(path, "rb") as handle:
                return cloudpickle.load(handle)
        return trial.get_pickled_error()  # the copy in the storage path
    except Exception:  # unreadable, or not a Tune trial: the text will do
        return None


def _error_text(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    try:
        if path and Path(path).is_file():
            return Path(path).read_text(errors="replace")
        return str(trial.get_error() or "")
    except Exception:
        return ""


#: Sweeps whose Tune run was asked to end as on Ctrl-C (see :func:`stop_for_problem`).
_SIGNALLED: set[str] = set()


def stop_for_problem(sweep: str, exc: BaseException) -> None:
    """Note a tracking failure and end the sweep's Tune run the way Ctrl-C does.

    Tune ends a run on SIGUSR1 exactly as on a first Ctrl-C: it saves the experiment with unfinished
    trials still pending or running, so ``--resume`` runs them. Stopping through a Stopper instead
    would mark pending trials terminated, and a resume would never run them. The signal is only sent
    while Tune's own handler is installed (``Tuner.fit`` in the main thread); otherwise
    :class:`TrackingOutageStopper` ends the run.
    """
    tracking.note_problem(sweep, exc)
    usr1 = getattr(signal, "SIGUSR1", None)
    if sweep in _SIGNALLED or usr1 is None:
        return
    handler = signal.getsignal(usr1)
    if callable(handler) and threading.current_thread() is threading.main_thread():
        _SIGNALLED.add(sweep)
        signal.raise_signal(usr1)


class TrackingOutageStopper(Stopper):
    """Stops the whole sweep once the driver noted a tracking failure it could not signal to Tune."""

    def __init__(self, sweep: str) -> None:
        self.sweep = sweep

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return tracking.problem(self.sweep) is not None and self.sweep not in _SIGNALLED


def reset_problem(sweep: str) -> None:
    """Forget an earlier tracking failure of ``sweep`` (a new run of it starts)."""
    tracking.clear_problem(sweep)
    _SIGNALLED.discard(sweep)
