"""How a sweep's Tune run reports as it runs: its RunConfig (the driver's callbacks, Tune's own output)
and the callbacks that print the console lines and log the parent's curves.

Tune pickles its callbacks with the experiment and unpickles them on ``--resume``: each holds only
what survives that (names, ids); the console itself is looked up by sweep name (:mod:`study.console`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from ray.tune import Callback, FailureConfig, RunConfig

from analysis.schema import STATUS_FAILED, STATUS_OK, STATUS_RUNNING, TAG_STATUS
from study.console import Console, console_of, outcome
from study.curves import CurveAxes, ParentCurves
from study.finalise import MlflowFinaliser, TrackingOutageStopper
from study.trial import SweepContext, run_name

logger = logging.getLogger(__name__)


class ConsoleReporter(Callback):
    """Tune callback: prints each trial's end to the console registered for the sweep."""

    def __init__(self, sweep: str) -> None:
        self.sweep = sweep

    def _console(self) -> Console | None:
        return console_of(self.sweep)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        console = self._console()
        if console is not None:
            console.started_trial(trial.trial_id, run_name(trial.config))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        console = self._console()
        if console is not None:
            name = console.ended_trial(trial.trial_id) or run_name(trial.config)
            console.line(name, outcome(trial.last_result or {}))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        console = self._console()
        if console is not None:
            name = console.ended_trial(trial.trial_id) or run_name(trial.config)
            message = (getattr(trial, "error_msg", None) or "").strip().splitlines()
            console.line(name, STATUS_FAILED + (f": {message[-1][:200]}" if message else ""))

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        console = self._console()
        if console is not None:
            name = console.ended_trial(trial.trial_id) or run_name(trial.config)
            console.line(name, "worker died; retrying in the same run", counts=False)

    def on_step(self, iteration: int, trials: list, **info: Any) -> None:
        console = self._console()
        if console is not None:
            console.refresh()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        console = self._console()
        if console is not None:
            console.close()


class ParentCurveLogger(Callback):
    """Tune callback (driver side): each trial that ends ``ok`` adds its points to the parent's curves.

    A trial the scheduler stopped early ends ``ok`` too (its last report still says ``running``): its
    timing is as good as any. The callback never raises; a tracking failure is logged and the
    finaliser, which meets the same store, stops the sweep.
    """

    def __init__(self, tracking_uri: str, parent_run_id: str, axes: CurveAxes) -> None:
        self.tracking_uri = tracking_uri
        self.parent_run_id = parent_run_id
        self.axes = axes
        self._curves: ParentCurves | None = None

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its callbacks with the experiment
        return {**self.__dict__, "_curves": None}

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        if result.get(TAG_STATUS) not in (STATUS_OK, STATUS_RUNNING):
            return
        try:
            if self._curves is None:
                self._curves = ParentCurves(self.tracking_uri, self.parent_run_id, self.axes)
            self._curves.log(trial.config, result)
        except Exception as exc:  # the store is down: the finaliser stops the sweep
            logger.warning("could not log trial %s to the parent's curves: %s", trial.trial_id, exc)


def run_config(
    sweep: str, storage_path: str, max_failures: int, ctx: SweepContext, axes: CurveAxes, verbose: bool
) -> RunConfig:
    """Tune's RunConfig of a sweep: the driver's callbacks (finaliser, parent curves, console), the
    outage stopper, and Tune's own output only when ``verbose``."""
    tctx = ctx.tracking
    return RunConfig(
        name=sweep,
        storage_path=storage_path,
        failure_config=FailureConfig(max_failures=max_failures),
        callbacks=[
            MlflowFinaliser(ctx),
            ParentCurveLogger(tctx.tracking_uri, tctx.parent_run_id, axes),
            ConsoleReporter(sweep),
        ],
        stop=TrackingOutageStopper(sweep),
        verbose=2 if verbose else 0,
    )


#: Tune's output engine: the legacy one is silent at verbosity 0 (the new one still prints its
#: configuration box and a TensorBoard hint); ``--verbose`` keeps the new engine and its tables.
NEW_OUTPUT_ENV = "RAY_AIR_NEW_OUTPUT"


@contextlib.contextmanager
def tune_output(verbose: bool) -> Iterator[None]:
    """Tune quiet (our console speaks) unless ``verbose``; Tune reads the switch when it starts a run."""
    saved = os.environ.get(NEW_OUTPUT_ENV)
    tune_logger = logging.getLogger("ray.tune")
    level = tune_logger.level
    if not verbose:
        os.environ[NEW_OUTPUT_ENV] = "0"
        tune_logger.setLevel(logging.WARNING)  # "Wrote the latest version of all result files ..."
    try:
        yield
    finally:
        tune_logger.setLevel(level)
        if saved is None:
            os.environ.pop(NEW_OUTPUT_ENV, None)
        else:
            os.environ[NEW_OUTPUT_ENV] = saved
