"""The MLflow UI in a real browser: after a small sweep, ``relgrad ui --sweep`` prints a URL that shows
the parent run's step time against D for every method, and the experiment opens on its runs (the
machine-learning view, not MLflow's GenAI home).

Headless Chromium driven by Playwright with the system's browser (``apt-get install chromium``; nothing
is downloaded). Skipped, saying why, only when no browser or no Playwright is found: ``.ci/run``
installs both. ``RELGRAD_UI_SCREENSHOT=path.png`` keeps a screenshot of the chart view (README's).
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from study.cli import main
from study.mlflow_view import experiment_url

REPO = Path(__file__).resolve().parents[2]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
METHODS = ("relative", "ordinary")
WAIT_MS = 120_000  # a first page load on 2 busy cores; fails rather than hangs


def _browser() -> str | None:
    given = os.environ.get("RELGRAD_CHROMIUM")
    if given:
        return given
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - .ci/run installs it (the dev extra)
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(
        sync_playwright is None, reason="playwright is not installed (pip install -e '.[dev]')"
    ),
    pytest.mark.skipif(
        _browser() is None,
        reason="no Chromium found (apt-get install chromium, or set RELGRAD_CHROMIUM); .ci/run installs it",
    ),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(ray_session, store: dict[str, str]) -> Iterator[tuple[str, str]]:
    """A 4-trial sweep (2 methods × 2 D), then ``relgrad ui --sweep`` on it: (printed URL, base URL)."""
    args = ["--name", "browser", "--tracking-uri", store["uri"], "--storage-path", store["storage"]]
    assert main(["scaling", "--preset", "smoke", "--methods", ",".join(METHODS), *args]) == 0
    port = _free_port()
    command = [sys.executable, "-m", "study.cli", "ui", "--sweep", "browser", "--port", str(port)]
    proc = subprocess.Popen(
        [*command, "--tracking-uri", store["uri"]],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        printed = lines.get(timeout=WAIT_MS / 1000)
        match = re.search(r"(http://\S+)", printed)
        assert match, printed
        yield match.group(1), f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_parent_run_charts_and_the_runs_in_chromium(served: tuple[str, str]) -> None:
    url, base = served
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_browser(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            # the saved view of the sweep: its parent run's charts, one step-time curve per method
            for method in METHODS:
                page.get_by_text(f"browser (step_s/{method})").first.wait_for(timeout=WAIT_MS)
            text = page.inner_text("body")
            assert "Error loading shared view state" not in text
            assert "step_s/ordinary vs step_s/relative" in text  # the combined log-log chart
            shot = os.environ.get("RELGRAD_UI_SCREENSHOT")
            if shot:
                close = page.locator('button[aria-label="Close"]')  # MLflow's assistant panel
                if close.count():
                    close.first.click()
                page.wait_for_timeout(2000)
                page.screenshot(path=shot)

            # what `relgrad ui` prints without --sweep: the experiment's runs, in the ML view (a fresh
            # browser context: the UI keeps its view state in local storage)
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.goto(experiment_url(base, url.split("/#/experiments/")[1].split("/")[0]))
            page.get_by_text("Run Name").first.wait_for(timeout=WAIT_MS)
            page.get_by_text("browser", exact=True).first.wait_for(timeout=WAIT_MS)  # the parent run
            text = page.inner_text("body")
            assert "Model registry" in text  # the ML sidebar ...
            assert "Observability" not in text and "Start Demo" not in text  # ... not the GenAI one
        finally:
            browser.close()
