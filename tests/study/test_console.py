"""The sweep's console in-process: one line per trial named as its run, k of N, ETA, skipped points."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest

from study import console
from study.console import Console, duration, outcome, step_time
from study.tune_callbacks import ConsoleReporter

POINT = {"method": "ordinary", "dim": 2048, "depth": 2, "batch_size": 64, "lr": 1e-3}


def _trial(trial_id: str, config: dict, result: dict) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, config=config, last_result=result, error_msg=None)


def test_formats() -> None:
    assert [duration(s) for s in (0.4, 45, 80, 3600 + 5 * 60 + 9)] == ["0 s", "45 s", "1 m 20 s", "1 h 5 m"]
    assert [step_time(s) for s in (0.512, 3.2e-3, 8.5e-5, 12.0)] == ["0.512 s", "3.2 ms", "85 µs", "12 s"]
    assert step_time(8.5e-4) == "0.85 ms"
    ok = {"status": "ok", "sec_per_iter_min": 0.51, "best_val_ll": -77.7029}
    assert outcome(ok) == "ok 0.51 s/step val LL -77.7"  # the example line, with the HPO objective
    assert outcome({"status": "running", "sec_per_iter_min": 2e-3}) == "stopped early 2 ms/step"
    assert outcome({"status": "diverged", "sec_per_iter_min": 1e-3, "val_ll": float("-inf")}) == (
        "diverged 1 ms/step"
    )


def test_lines_count_k_of_n_with_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(console.time, "monotonic", lambda: now[0])
    out = io.StringIO()
    sweep = "console-test"
    view = console.open_console(sweep, total=4, done=1, stream=out)  # one trial ended before a resume
    assert view.live is False  # not a terminal: no status line
    reporter = ConsoleReporter(sweep)
    trial = _trial("t1", POINT, {"status": "ok", "sec_per_iter_min": 0.51})
    reporter.on_trial_start(0, [], trial)
    now[0] = 110.0
    reporter.on_trial_complete(0, [], trial)  # 10 s per trial here, 2 left
    now[0] = 120.0
    console.note_skipped(sweep, {**POINT, "dim": 4096}, "over budget: 9 s > 2 s")  # 10 s per trial, 1 left
    reporter.on_step(0, [])
    console.close_console(sweep)
    assert console.console_of(sweep) is None
    assert out.getvalue().splitlines() == [
        "[2/4] ordinary-d2048-L2-B64-lr0.001 ok 0.51 s/step · ETA 20 s",
        "[3/4] ordinary-d4096-L2-B64-lr0.001 skipped (over budget: 9 s > 2 s) · ETA 10 s",
    ]


def test_the_eta_follows_the_pace_of_the_latest_trials(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scaling sweep runs its larger D last: the ETA follows the slow trials, not the early fast ones."""
    now = [0.0]
    monkeypatch.setattr(console.time, "monotonic", lambda: now[0])
    view = console.Console(total=20, stream=io.StringIO())
    for _ in range(10):  # ten trials of 1 s
        now[0] += 1.0
        view.line("small", "ok")
    assert view.eta() == " · ETA 10 s"
    for _ in range(console.ETA_WINDOW):  # then trials of 30 s: the pace of the window
        now[0] += 30.0
        view.line("large", "ok")
    assert view.eta() == f" · ETA {console.duration(30.0 * (20 - 10 - console.ETA_WINDOW))}"


def test_failures_and_retries_are_one_line_each() -> None:
    out = io.StringIO()
    console.open_console("console-fail", total=2, stream=out)
    reporter = ConsoleReporter("console-fail")
    trial = _trial("t1", POINT, {})
    trial.error_msg = "Traceback (most recent call last):\n  ...\nRuntimeError: CUDA out of memory"
    reporter.on_trial_recover(0, [], trial)
    reporter.on_trial_error(0, [], trial)
    console.close_console("console-fail")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[0/2] ordinary-d2048-L2-B64-lr0.001 worker died; retrying in the same run")
    assert lines[1].startswith("[1/2] ordinary-d2048-L2-B64-lr0.001 failed: RuntimeError: CUDA out of memory")


def test_status_line_on_a_terminal_is_rewritten_in_place() -> None:
    out = io.StringIO()
    view = Console(total=3, stream=out, live=True)
    view.started_trial("t1", "relative-d64-L2-B64-lr0.001")
    view.refresh(now=view.started + 12)
    assert out.getvalue().startswith("\r\x1b[Krunning relative-d64-L2-B64-lr0.001 (12 s) · 0/3 done")
    view.line("relative-d64-L2-B64-lr0.001", "ok 1 ms/step")  # clears the status line first
    tail = out.getvalue().split("\r\x1b[K")[-1]
    assert tail.startswith("[1/3] relative-d64-L2-B64-lr0.001 ok 1 ms/step · ETA ") and tail.endswith("\n")


def test_reporter_survives_pickling_without_its_console() -> None:
    import pickle

    reporter = pickle.loads(pickle.dumps(ConsoleReporter("nobody-listens")))
    trial = _trial("t1", POINT, {"status": "ok"})
    reporter.on_trial_start(0, [], trial)  # no console registered for this sweep: nothing happens
    reporter.on_trial_complete(0, [], trial)
