"""A prepared chart view of a sweep's parent run in MLflow's UI, and the UI's URLs.

MLflow's experiment page (3.x) restores a saved view from an experiment tag
``mlflow.sharedViewState.<key>`` when its URL carries ``viewStateShareKey=<key>``: a JSON envelope
(``name``, ``createdAt``, ``updatedAt``, ``state``) whose ``state`` holds the page's search filter and
chart cards. The view built here shows only the sweep's parent run and opens on its curves against D
(:mod:`study.curves`): step time and peak memory on log-log axes, the test LL against the Gaussian
yardstick; MLflow adds a chart for every other metric below them. The card fields are those of the
UI's line-chart card (``RunsChartsLineCardConfig``: ``selectedMetricKeys``, ``scaleType``,
``xAxisScaleType``, ``xAxisKey``); ``tests/study/test_ui_browser.py`` opens the view in a browser.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from urllib.parse import urlencode

from analysis.schema import CURVE_GAUSSIAN, CURVE_PEAK_MEM, CURVE_STEP_S, CURVE_TEST_LL

#: Experiment-tag prefix of MLflow's saved views (the UI's ``viewStateShareKey``).
VIEW_TAG_PREFIX = "mlflow.sharedViewState."
#: Query that puts the experiment page in its classic (runs, charts) view rather than the GenAI home.
ML_VIEW = {"workflowType": "machine_learning"}
_SECTION = "relgrad-curves"


def view_key(sweep: str) -> str:
    """The saved view's key for ``sweep`` (sweep names are tag-safe: letters, digits, ``._-``)."""
    return f"relgrad-{sweep}"


def experiment_url(base: str, experiment_id: str, **query: str) -> str:
    """The experiment's runs page in the machine-learning view (``query``: more URL parameters)."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{urlencode({**query, **ML_VIEW})}"


def sweep_view_url(base: str, experiment_id: str, sweep: str) -> str:
    """The experiment page opened on the saved view of ``sweep`` (its parent run's charts)."""
    return experiment_url(base, experiment_id, viewStateShareKey=view_key(sweep), compareRunsMode="CHART")


def _line_card(uuid: str, title: str, keys: list[str], log: bool) -> dict[str, object]:
    scale = "log" if log else "linear"
    return {
        "uuid": uuid,
        "type": "LINE",
        "isGenerated": False,
        "deleted": False,
        "metricSectionId": _SECTION,
        "runsCountToCompare": 10,
        "displayName": title,
        "metricKey": keys[0],
        "selectedMetricKeys": keys,
        "lineSmoothness": 0,
        "scaleType": scale,
        "xAxisScaleType": scale,
        "xAxisKey": "step",
        "selectedXAxisMetricKey": "",
        "yAxisKey": "metric",
        "yAxisExpressions": [],
        "displayPoints": True,
        "ignoreOutliers": False,
        "useGlobalXaxisKey": False,
        "useGlobalLineSmoothing": False,
        "range": {},
    }


def sweep_view_state(sweep: str, parent_run_id: str, metric_keys: Iterable[str]) -> dict[str, object]:
    """The page state: the parent run only, and one chart per curve family (those the run has)."""
    keys = sorted(metric_keys)

    def family(quantity: str) -> list[str]:
        return [k for k in keys if k.startswith(f"{quantity}/")]

    cards = []
    for uuid, title, chosen, log in (
        ("relgrad-step-s", "step time (s) against D, log-log", family(CURVE_STEP_S), True),
        ("relgrad-peak-mem", "peak memory (MB) against D, log-log", family(CURVE_PEAK_MEM), True),
        (
            "relgrad-test-ll",
            "test LL against D (Gaussian yardstick: gaussian_test_ll)",
            family(CURVE_TEST_LL) + [k for k in keys if k == CURVE_GAUSSIAN],
            False,
        ),
    ):
        if chosen:
            cards.append(_line_card(uuid, title, chosen, log))
    # MLflow files every other metric in a section named after its prefix (``step_s/relative`` in
    # ``step_s``): those of the curves start folded, below the combined charts (kept first).
    folded = [
        {"uuid": f"relgrad-{q}", "name": q, "display": False, "isReordered": False}
        for q in (CURVE_STEP_S, CURVE_PEAK_MEM, CURVE_TEST_LL)
    ]
    return {
        "searchFilter": f"attributes.run_id = '{parent_run_id}'",
        "compareRunCharts": cards,
        "compareRunSections": [
            {
                "uuid": _SECTION,
                "name": f"relgrad sweep {sweep}",
                "display": True,
                "isReordered": False,
                "columns": 1,  # one wide chart per row: the curves are the point of the view
                "cardHeight": 420,
            },
            *folded,
        ],
        "isAccordionReordered": True,
        "runListHidden": True,
        "hideEmptyCharts": True,
    }


def sweep_view_tag(sweep: str, parent_run_id: str, metric_keys: Iterable[str]) -> tuple[str, str]:
    """``(tag key, tag value)`` of the saved view, as the UI stores one."""
    now = int(time.time() * 1000)
    state = sweep_view_state(sweep, parent_run_id, metric_keys)
    envelope = {"name": f"relgrad: {sweep}", "createdAt": now, "updatedAt": now, "state": json.dumps(state)}
    return VIEW_TAG_PREFIX + view_key(sweep), json.dumps(envelope)
