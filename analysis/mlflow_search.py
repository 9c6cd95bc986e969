"""Every MLflow run that matches a filter: ``search_runs`` answers a page at a time.

Light (MLflow's client only), so that the sweep driver (``study.tracking``) pages the same way the report's
loader (``analysis.loading``) does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from mlflow.entities import Run, ViewType
from mlflow.tracking import MlflowClient

#: Runs per page (MLflow's own upper limit for one search_runs call is far above it).
PAGE_SIZE = 1000

T = TypeVar("T")


def _once(call: Callable[[], T]) -> T:
    return call()


def search_all_runs(
    client: MlflowClient,
    experiment_id: str,
    filter_string: str,
    *,
    retry: Callable[[Callable[[], T]], T] = _once,
) -> list[Run]:
    """The active runs of ``experiment_id`` matching ``filter_string``, every page of them; each page's
    request goes through ``retry`` (e.g. ``study.tracking.with_retry`` against a busy sqlite store)."""
    runs: list[Run] = []
    token: str | None = None
    while True:
        page = retry(
            lambda token=token: client.search_runs(
                [experiment_id],
                filter_string=filter_string,
                run_view_type=ViewType.ACTIVE_ONLY,
                max_results=PAGE_SIZE,
                page_token=token,
            )
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs
