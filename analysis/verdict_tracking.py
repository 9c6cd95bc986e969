"""A report's verdict on each sweep's parent run, so that sweeps can be searched and compared in MLflow.

Tags ``order_<method>`` (the headline order; ``order_counted_<method>`` / ``order_timed_<method>``
where the order table has those columns) and metrics ``c/<method>``, ``c_low/<method>``,
``c_high/<method>``, ``d3_share/<method>`` and, at each predicted D (``step = D``),
``speedup/<method>`` with its interval; the names are :mod:`analysis.schema`'s. Each method's numbers
are those of its curve that reached the largest D (the order table's evidence; with several devices in
one sweep, the device that reached the largest D). Re-running a report logs no point twice: a metric
already holding the same value at the same step is left alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from analysis.loading import SweepInfo
from analysis.schema import SPEEDUP_METRICS, TAG_DEVICE_NAME, TAG_SWEEP, VERDICT_METRICS, VERDICT_ORDER_TAGS


def _evidence(orders: pd.DataFrame, sweep: str) -> pd.DataFrame:
    """One row per method of ``sweep``: the device whose curve reached the largest D."""
    rows = orders[orders[TAG_SWEEP] == sweep]
    if rows.empty:
        return rows
    rows = rows.sort_values("max_dim", ascending=False, na_position="last", kind="stable")
    return rows.drop_duplicates("method", keep="first")


def verdict_tags(orders: pd.DataFrame, sweep: str) -> dict[str, str]:
    """``{"order_relative": "quadratic", ...}`` (+ counted / timed orders where the table has them)."""
    tags: dict[str, str] = {}
    for row in _evidence(orders, sweep).itertuples(index=False):
        for column, prefix in VERDICT_ORDER_TAGS.items():
            value = getattr(row, column, None)
            if isinstance(value, str) and value:
                tags[f"{prefix}{row.method}"] = value
    return tags


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def verdict_metrics(
    orders: pd.DataFrame, predictions: pd.DataFrame, sweep: str
) -> list[tuple[str, float, int]]:
    """``(key, value, step)``: c with its interval and the D³ share (step 0), the predicted speedups
    of the reference over each method (step = D)."""
    out: list[tuple[str, float, int]] = []
    evidence = _evidence(orders, sweep)
    for row in evidence.itertuples(index=False):
        for column, prefix in VERDICT_METRICS.items():
            value = getattr(row, column, None)
            if _finite(value):
                out.append((f"{prefix}{row.method}", float(value), 0))
    if predictions.empty or "speedup_of_reference" not in predictions:
        return out
    for row in evidence.itertuples(index=False):
        curve = predictions[
            (predictions[TAG_SWEEP] == sweep)
            & (predictions[TAG_DEVICE_NAME] == row.device_name)
            & (predictions["method"] == row.method)
            & (predictions["depth"] == row.depth)
            & (predictions["batch_size"] == row.batch_size)
        ]
        for pred in curve.itertuples(index=False):
            for column, prefix in SPEEDUP_METRICS.items():
                value = getattr(pred, column)
                if _finite(value):
                    out.append((f"{prefix}{row.method}", float(value), int(pred.dim)))
    return out


def _new_points(client: MlflowClient, run_id: str, points: list[tuple[str, float, int]]) -> list[Metric]:
    """The points not already on the run with the same value at the same step."""
    existing: dict[str, set[tuple[int, float]]] = {}
    new: list[Metric] = []
    now = pd.Timestamp.now(tz="UTC").value // 1_000_000
    for key, value, step in points:
        if key not in existing:
            existing[key] = {(int(m.step), float(m.value)) for m in client.get_metric_history(run_id, key)}
        if not any(s == step and math.isclose(v, value, rel_tol=1e-12) for s, v in existing[key]):
            new.append(Metric(key, value, now, step))
    return new


def log_verdicts(
    tracking_uri: str,
    sweeps: Sequence[SweepInfo],
    orders: pd.DataFrame,
    predictions: pd.DataFrame,
) -> list[str]:
    """Log each sweep's verdict to its parent run; returns the problems (one line each)."""
    if orders.empty:
        return []
    client = MlflowClient(tracking_uri=tracking_uri)
    problems: list[str] = []
    for info in sweeps:
        if info.parent_run_id is None:
            continue  # _log_artifacts already says so
        tags = verdict_tags(orders, info.name)
        points = verdict_metrics(orders, predictions, info.name)
        try:
            for key, value in tags.items():
                client.set_tag(info.parent_run_id, key, value)
            metrics = _new_points(client, info.parent_run_id, points)
            for start in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics per batch
                client.log_batch(info.parent_run_id, metrics=metrics[start : start + 1000])
        except (MlflowException, OSError) as err:
            problems.append(f"could not log the verdict to run {info.parent_run_id}: {err}")
    return problems
