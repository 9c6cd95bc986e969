"""The sweep's console: one line per finished trial, named as its MLflow run, and a status line.

``[12/33] ordinary-d2048-L2-B64-lr0.001 ok 0.51 s/step · ETA 1 m 20 s``: k of N counts every trial of
the sweep (those a resumed sweep had already finished and the points skipped over budget included);
the ETA is the pace of the last :data:`ETA_WINDOW` trials times the trials left (a scaling sweep runs its
larger D last, so the mean over all its trials would promise too little). While trials run, a terminal
also gets one line rewritten in place (what runs, for how long); a log file gets only the finished lines.

Tune pickles its callbacks with the experiment and unpickles them on ``--resume``, so its callback
(:class:`study.tune_callbacks.ConsoleReporter`) holds only the sweep's name: the console it prints to is
registered here by the driver (:func:`open_console`), as are the skipped points the grid searcher
records (:func:`note_skipped`).
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from analysis.schema import STATUS_DIVERGED, STATUS_RUNNING, TAG_STATUS
from study.trial import run_name

#: Seconds between two updates of the live status line.
REFRESH_S = 1.0
#: How many of the latest finished trials set the ETA's pace.
ETA_WINDOW = 4


def duration(seconds: float) -> str:
    """``45 s``, ``1 m 20 s``, ``2 h 5 m``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} m"
    return f"{minutes} m {secs} s" if minutes else f"{secs} s"


def step_time(seconds: float) -> str:
    """``0.51 s``, ``3.2 ms``, ``85 µs`` (three significant digits at most)."""
    if seconds >= 0.1:
        return f"{seconds:.3g} s"
    return f"{seconds * 1e3:.3g} ms" if seconds >= 1e-4 else f"{seconds * 1e6:.3g} µs"


def outcome(result: Mapping[str, Any]) -> str:
    """What one trial's last report says: ``ok 0.51 s/step`` (+ ``val LL`` in HPO sweeps)."""
    status = result.get(TAG_STATUS)
    word = {STATUS_RUNNING: "stopped early", None: "ended"}.get(status, str(status))
    parts = [word]
    seconds = result.get("sec_per_iter_min")
    if isinstance(seconds, (int, float)) and math.isfinite(seconds):
        parts.append(f"{step_time(float(seconds))}/step")
    val = result.get("best_val_ll", result.get("val_ll"))
    if status != STATUS_DIVERGED and isinstance(val, (int, float)) and math.isfinite(val):
        parts.append(f"val LL {val:.4g}")
    return " ".join(parts)


@dataclass
class Console:
    """Counts and prints what a sweep's trials do (driver side)."""

    total: int
    done: int = 0
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    live: bool | None = None  # rewrite a status line in place; default: when the stream is a terminal
    started: float = field(default_factory=lambda: time.monotonic())
    #: The start and the ends of this driver's latest trials (at most ETA_WINDOW intervals): the ETA's pace.
    marks: deque[float] = field(init=False)
    running: dict[str, tuple[str, float]] = field(default_factory=dict)  # trial id -> (name, start)
    _status_shown: bool = False
    _last_refresh: float = 0.0

    def __post_init__(self) -> None:
        if self.live is None:
            self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.marks = deque([self.started], maxlen=ETA_WINDOW + 1)

    def eta(self) -> str:
        left = max(self.total - self.done, 0)
        if left == 0:
            return ""
        if len(self.marks) < 2:
            return " · ETA –"
        per_trial = (self.marks[-1] - self.marks[0]) / (len(self.marks) - 1)
        return f" · ETA {duration(per_trial * left)}"

    def _clear(self) -> None:
        if self._status_shown:
            self.stream.write("\r\x1b[K")
            self._status_shown = False

    def line(self, name: str, text: str, *, counts: bool = True) -> None:
        """``[k/N] name text · ETA``; ``counts``: the trial has ended (k goes up)."""
        if counts:
            self.done += 1
            self.marks.append(time.monotonic())
        self._clear()
        self.stream.write(f"[{min(self.done, self.total)}/{self.total}] {name} {text}{self.eta()}\n")
        self.stream.flush()

    def started_trial(self, trial_id: str, name: str) -> None:
        self.running[trial_id] = (name, time.monotonic())

    def ended_trial(self, trial_id: str) -> str:
        name, _ = self.running.pop(trial_id, ("", 0.0))
        return name

    def refresh(self, now: float | None = None) -> None:
        """Rewrite the status line (terminals only, at most every :data:`REFRESH_S`)."""
        now = time.monotonic() if now is None else now
        if not self.live or not self.running or now - self._last_refresh < REFRESH_S:
            return
        self._last_refresh = now
        shown = ", ".join(f"{name} ({duration(now - start)})" for name, start in self.running.values())
        text = f"running {shown} · {self.done}/{self.total} done{self.eta()}"
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self.stream.write("\r\x1b[K" + (text if len(text) <= width else text[: width - 1] + "…"))
        self.stream.flush()
        self._status_shown = True

    def close(self) -> None:
        self._clear()
        self.stream.flush()


_CONSOLES: dict[str, Console] = {}


def open_console(sweep: str, total: int, done: int = 0, **options: Any) -> Console:
    """The console of ``sweep`` for this driver (replacing any earlier one)."""
    console = Console(total=total, done=done, **options)
    _CONSOLES[sweep] = console
    return console


def console_of(sweep: str) -> Console | None:
    return _CONSOLES.get(sweep)


def close_console(sweep: str) -> None:
    console = _CONSOLES.pop(sweep, None)
    if console is not None:
        console.close()


def note_skipped(sweep: str, point: Mapping[str, Any], reason: str) -> None:
    """A grid point recorded ``skipped_over_budget`` without a trial: it counts, with its reason."""
    console = _CONSOLES.get(sweep)
    if console is not None:
        console.line(run_name(point), f"skipped ({reason})")
