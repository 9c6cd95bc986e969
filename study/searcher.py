"""A budget-aware grid searcher: each curve's dimensions are released in ascending order.

A *curve* is one (method, depth, batch size); its *levels* are its dimensions, each holding the
grid points at that D (one per learning rate). The next level is released only when every trial of
the previous one has finished and none of them took longer per step than the method's budget.
Once a level is over budget, the remaining levels are not launched: they are recorded as MLflow
child runs with status ``skipped_over_budget`` and the reason, so no cluster hour is spent on a
curve whose answer is already known.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ray.tune.search import Searcher

from analysis.schema import STATUS_SKIPPED
from study import console, tracking
from study.finalise import stop_for_problem
from study.trial import SweepContext, run_name, trial_params

#: The searcher's progress, saved as JSON with Tune's experiment state (the context is not state).
STATE_KEYS: tuple[str, ...] = (
    "budgets",
    "levels",
    "current",
    "outstanding",
    "over_budget",
    "queue",
    "pending",
    "skipped",
)


def curve_key(point: Mapping[str, Any]) -> str:
    return f"{point['method']}|L{point['depth']}|B{point['batch_size']}"


def skip_trial_id(point: Mapping[str, Any]) -> str:
    return f"skip-{run_name(point)}"


class BudgetedGridSearcher(Searcher):
    """Suggests the points of a grid, curve by curve in ascending D, within per-step budgets."""

    def __init__(
        self,
        points: list[dict[str, Any]],
        budgets: Mapping[str, float | None],
        ctx: SweepContext | None = None,
    ) -> None:
        super().__init__(metric=None, mode=None)
        self.budgets = dict(budgets)
        self.ctx = ctx
        levels: dict[str, dict[int, list[dict[str, Any]]]] = {}
        for point in points:
            levels.setdefault(curve_key(point), {}).setdefault(int(point["dim"]), []).append(dict(point))
        self.levels: dict[str, list[list[dict[str, Any]]]] = {
            key: [by_dim[d] for d in sorted(by_dim)] for key, by_dim in levels.items()
        }
        self.current: dict[str, int] = {key: 0 for key in self.levels}
        self.outstanding: dict[str, int] = {}
        self.over_budget: dict[str, str] = {}  # curve -> reason, for the level being run
        self.queue: list[dict[str, Any]] = []
        self.pending: dict[str, str] = {}  # Tune trial id -> curve
        self.skipped: list[str] = []  # skip ids already recorded in MLflow
        for key in self.levels:
            self._release(key)

    # ---------------------------------------------------------------------------------------
    def _release(self, key: str) -> None:
        level = self.levels[key][self.current[key]]
        self.queue.extend(dict(p) for p in level)
        self.outstanding[key] = len(level)

    def _finished(self) -> bool:
        return not self.queue and not self.pending

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self.queue:
            point = self.queue.pop(0)
            self.pending[trial_id] = curve_key(point)
            return point
        return Searcher.FINISHED if self._finished() else None

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        key = self.pending.pop(trial_id, None)
        if key is None:  # not ours (e.g. a duplicate completion after a restore)
            return
        point = self.levels[key][self.current[key]][0]
        budget = self.budgets.get(point["method"])
        seconds = (result or {}).get("sec_per_iter")
        if budget is not None and seconds is not None and float(seconds) > budget:
            self.over_budget[key] = (
                f"{point['method']} took {float(seconds):.3g} s/step at D={point['dim']} "
                f"(depth {point['depth']}, batch {point['batch_size']}) > budget {budget:g} s"
            )
        self.outstanding[key] -= 1
        if self.outstanding[key] > 0:
            return
        if key in self.over_budget:
            self._skip_rest(key, self.over_budget[key])
        elif self.current[key] + 1 < len(self.levels[key]):
            self.current[key] += 1
            self._release(key)

    def _skip_rest(self, key: str, reason: str) -> None:
        remaining = self.levels[key][self.current[key] + 1 :]
        self.current[key] = len(self.levels[key]) - 1
        for level in remaining:
            for point in level:
                self._record_skip(point, reason)

    def _record_skip(self, point: dict[str, Any], reason: str) -> None:
        skip_id = skip_trial_id(point)
        if self.ctx is None or skip_id in self.skipped:
            return
        ctx = self.ctx
        params = {**trial_params(point, ctx.data, ctx.train), **ctx.extra_params}
        try:
            run_id = tracking.start_child(
                ctx.tracking, skip_id, params, role=ctx.role, run_name=run_name(point)
            )
            tracking.finish_child(ctx.tracking.tracking_uri, run_id, STATUS_SKIPPED, reason)
        except Exception as exc:  # the store is down: the sweep stops, resumably
            stop_for_problem(ctx.tracking.sweep, exc)
            return
        self.skipped.append(skip_id)
        console.note_skipped(ctx.tracking.sweep, point, "over budget: " + reason)

    # ---------------------------------------------------------------------------------------
    # Tune saves the searcher with the experiment and restores it on Tuner.restore (--resume).
    # The state is plain JSON (no pickle): resuming never executes what the storage folder holds.
    def get_state(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in STATE_KEYS}

    def set_state(self, state: dict[str, Any]) -> None:
        missing = [key for key in STATE_KEYS if key not in state]
        if missing:
            raise ValueError(f"searcher state lacks {missing}")
        for key in STATE_KEYS:
            setattr(self, key, state[key])

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "w", encoding="utf-8") as handle:
            json.dump(self.get_state(), handle)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, encoding="utf-8") as handle:
            self.set_state(json.load(handle))
