"""Curves on a sweep's parent run: each finished trial adds one point per quantity at ``step = D``.

MLflow draws a metric logged with steps as a line chart over the steps, so the parent run's charts show
step time, peak memory and test LL (against the Gaussian yardstick) as functions of the dimension, per
method, while the sweep runs. The names are :mod:`analysis.schema`'s (``curve_key``, ``CURVE_SOURCES``).
A key gets one point per D (the first ``ok`` trial there): the points already on the run are read once,
so a resumed sweep, or a trial reported again, never duplicates one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from analysis.schema import (
    CURVE_GAUSSIAN,
    CURVE_SOURCES,
    PER_METHOD_CURVES,
    ROLE_TRIAL,
    STATUS_OK,
    TAG_ROLE,
    TAG_STATUS,
    curve_key,
)
from study import tracking
from study.tracking import TrackingContext

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CurveAxes:
    """The grid axes besides D that a sweep varies: each value then has its own curve."""

    by_depth: bool = False
    by_batch: bool = False

    @classmethod
    def of(cls, depths: Any, batch_sizes: Any) -> CurveAxes:
        return cls(by_depth=len(set(depths)) > 1, by_batch=len(set(batch_sizes)) > 1)

    def points(self, point: Mapping[str, Any], metrics: Mapping[str, Any]) -> dict[str, float]:
        """``{curve key: value}`` of one trial: its finite metrics among the curves' sources."""
        depth = int(point["depth"]) if self.by_depth else None
        batch = int(point["batch_size"]) if self.by_batch else None
        out: dict[str, float] = {}
        for quantity, source in CURVE_SOURCES.items():
            value = metrics.get(source)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            method = str(point["method"]) if quantity in PER_METHOD_CURVES else None
            key = curve_key(quantity, method, depth, batch) if quantity != CURVE_GAUSSIAN else quantity
            out[key] = float(value)
        return out


class ParentCurves:
    """Logs curve points to one parent run, at most one per key and D."""

    def __init__(self, tracking_uri: str, parent_run_id: str, axes: CurveAxes) -> None:
        self.tracking_uri = tracking_uri
        self.parent_run_id = parent_run_id
        self.axes = axes
        self._logged: dict[str, set[int]] | None = None

    def _existing(self) -> dict[str, set[int]]:
        """Steps already logged per curve key (read once: the run may come from an earlier driver)."""
        if self._logged is None:
            client = tracking.client_for(self.tracking_uri)
            run = tracking.with_retry(lambda: client.get_run(self.parent_run_id))
            prefixes = tuple(f"{q}/" for q in CURVE_SOURCES)
            keys = [k for k in run.data.metrics if k.startswith(prefixes) or k in CURVE_SOURCES]
            self._logged = {
                key: {
                    int(m.step)
                    for m in tracking.with_retry(
                        lambda key=key: client.get_metric_history(self.parent_run_id, key)
                    )
                }
                for key in keys
            }
        return self._logged

    def log(self, point: Mapping[str, Any], metrics: Mapping[str, Any]) -> dict[str, float]:
        """Log the trial's points not yet on the run (``step = point['dim']``); returns those logged."""
        dim = int(point["dim"])
        logged = self._existing()
        new = {k: v for k, v in self.axes.points(point, metrics).items() if dim not in logged.get(k, set())}
        for key, value in new.items():
            tracking.log_metrics(self.tracking_uri, self.parent_run_id, {key: value}, step=dim)
            logged.setdefault(key, set()).add(dim)
        return new

    def backfill(self, runs: Iterable[Any]) -> dict[str, float]:
        """Add the points of ``ok`` trial runs (MLflow ``Run`` objects) the curves lack, oldest first.

        The Tune callback logs a trial as Tune sees it end; a trial that ended in MLflow just as its
        driver was stopped is never reported again on resume, so the driver tops the curves up from the
        runs at the end of each sweep.
        """
        added: dict[str, float] = {}
        for run in sorted(runs, key=lambda r: r.info.start_time or 0):
            tags, params = run.data.tags, run.data.params
            if tags.get(TAG_STATUS) != STATUS_OK or tags.get(TAG_ROLE) != ROLE_TRIAL:
                continue
            try:
                point = {"method": params["method"], "dim": int(params["dim"])}
                point |= {"depth": int(params["depth"]), "batch_size": int(params["batch_size"])}
            except (KeyError, ValueError):
                continue
            added |= self.log(point, run.data.metrics)
        return added


def top_up_curves(tctx: TrackingContext, axes: CurveAxes) -> None:
    """At the end of a complete sweep: the points of trials that ended in MLflow as an earlier driver
    stopped, which Tune never reported again. A store failing now is a warning (the curves are a view)."""
    try:
        children = tracking.child_runs(tctx.tracking_uri, tctx.experiment_id, tctx.sweep)
        ParentCurves(tctx.tracking_uri, tctx.parent_run_id, axes).backfill(children)
    except Exception as exc:
        logger.warning("sweep %s: the parent run's curves were not topped up: %s", tctx.sweep, exc)
