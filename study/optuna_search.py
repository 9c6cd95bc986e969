"""Ray Tune's OptunaSearch, made to record what the study did in optuna.db.

Two gaps of the stock searcher (Ray 2.60) for a study read in ``optuna-dashboard``:

- the objective is unnamed (``study.metric_names`` is None): it is named after the metric here;
- a trial that ASHA stopped ends ``COMPLETE``, and the result ASHA stopped it on is missing from its
  intermediate values: Tune hands a result to the searcher only when the scheduler lets the trial go
  on. Here such a trial (its last report still says ``running``: it did not end by itself) gets that
  last value as an intermediate value and ends ``PRUNED``, which Optuna gives the last intermediate
  value as its value.

It reaches into OptunaSearch's ``_ot_study``/``_ot_trials``/``_completed_trials``, which Ray keeps
since 2.0; ``tests/study/test_sweeps.py`` reads the study back to catch a change.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch

from analysis.schema import STATUS_RUNNING, TAG_STATUS


class PruningOptunaSearch(OptunaSearch):
    """OptunaSearch whose study names its objective and marks scheduler-stopped trials PRUNED."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._reported: dict[str, set[int]] = {}  # before super(): it sets the study up right away
        super().__init__(*args, **kwargs)

    def _setup_study(self, mode: Any) -> None:
        super()._setup_study(mode)
        metrics = self._metric if isinstance(self._metric, list) else [self._metric]
        with warnings.catch_warnings():  # "experimental" since Optuna 3.2, and what the dashboard reads
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._ot_study.set_metric_names([str(m) for m in metrics])

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        super().on_trial_result(trial_id, result)
        if trial_id not in self._completed_trials and "training_iteration" in result:
            self._reported.setdefault(trial_id, set()).add(int(result["training_iteration"]))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        stopped = (
            not error
            and result is not None
            and result.get(TAG_STATUS) == STATUS_RUNNING
            and trial_id in self._ot_trials
            and trial_id not in self._completed_trials
            and not isinstance(self._metric, list)
        )
        if not stopped:
            super().on_trial_complete(trial_id, result=result, error=error)
            return
        assert result is not None
        trial = self._ot_trials[trial_id]
        value, step = result.get(self._metric), result.get("training_iteration")
        finite = isinstance(value, (int, float)) and math.isfinite(value)
        if finite and step is not None and int(step) not in self._reported.get(trial_id, set()):
            trial.report(float(value), int(step))
        self._ot_study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        self._completed_trials.add(trial_id)
        self._reported.pop(trial_id, None)
