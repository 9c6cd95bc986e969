"""Stops from outside and resumes as printed (issue 17, findings 5-7): SIGTERM (what a batch scheduler,
``timeout`` or a container stop sends) mid-trial on a real driver, the one resume hint run exactly as
printed, and ``--resume`` refusing flags that would change the sweep."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.schema import STATUS_INTERRUPTED
from study.cli import main
from study.finalise import SweepSummary, resume_command
from study.kinds import SCALING, TUNE
from study.tracking import default_storage_path, default_tracking_uri
from tests.reliability.test_faults import (
    LONG,
    _assert_finished,
    _children,
    _cli,
    _mid_trial,
    _parent,
    _start,
    _wait_for,
    session_procs,
)
from tests.study.conftest import runs_of, write_preset

__all__ = ["session_procs"]


def _hint(output: str) -> list[str]:
    """The printed resume command, split as a shell would."""
    (line,) = [line for line in output.splitlines() if "continue it with: " in line]
    return shlex.split(line.split("continue it with: ", 1)[1])


# --------------------------------------------------------------------------------------------
# Finding 5: SIGTERM mid-trial is the first Ctrl-C: interrupted, KILLED parent, exit 143, no Ray dump
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_sigterm_mid_trial_is_a_clean_stop_resumed_exactly_as_printed(
    ray_session, tmp_path: Path, session_procs: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    # a store and results folder away from the working directory's defaults: the hint must carry both
    store = {
        "uri": f"sqlite:///{tmp_path}/elsewhere/mlflow.db",
        "storage": str(tmp_path / "elsewhere" / "tune"),
    }
    preset = write_preset(tmp_path, scaling=LONG)
    proc = _start(_cli(preset, "term", store), work, session_procs)
    _wait_for(_mid_trial(store["uri"], "term"), proc, 240, "a trial evaluating")
    proc.send_signal(signal.SIGTERM)  # to the driver only, as `kill` and `timeout` do
    output, _ = proc.communicate(timeout=180)

    assert proc.returncode == 143, output[-3000:]
    assert "SIGTERM received" not in output and "PC: @" not in output, output[-3000:]  # no Ray stack dump
    assert "relgrad: stopped by SIGTERM (exit code 143)" in output
    cut = [r for r in _children(store["uri"], "term") if "test_ll" not in r.data.metrics]
    assert cut and all(r.data.tags["status"] == STATUS_INTERRUPTED for r in cut)
    assert all(r.info.status != "RUNNING" for r in _children(store["uri"], "term"))
    assert _parent(store["uri"], "term").info.status == "KILLED"

    argv = _hint(output)
    assert argv[:5] == ["relgrad", "scaling", "--resume", "--name", "term"]
    assert argv[5:] == ["--tracking-uri", store["uri"], "--storage-path", store["storage"]]
    monkeypatch.chdir(work)  # the same shell, the command as printed
    assert main(argv[1:]) == 0
    _assert_finished(store, "term", 2)


@pytest.mark.slow
def test_sigterm_during_relgrad_train_closes_its_runs(tmp_path: Path, session_procs: list) -> None:
    uri = f"sqlite:///{tmp_path}/runs/mlflow.db"
    command = [sys.executable, "-m", "study.cli", "train", "--name", "one", "--tracking-uri", uri]
    command += ["--dim", "8", "--epochs", "200", "--steps-per-epoch", "500", "--train-budget-s", "60"]
    proc = _start(command, tmp_path, session_procs)
    _wait_for(_mid_trial(uri, "one"), proc, 120, "the run evaluating")
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, output[-3000:]
    assert "Traceback" not in output and "relgrad: run one interrupted" in output
    (child,) = _children(uri, "one")
    assert child.data.tags["status"] == STATUS_INTERRUPTED and child.info.status == "KILLED"
    assert _parent(uri, "one").info.status == "KILLED"


def test_sigterm_outside_tune_is_a_keyboard_interrupt() -> None:
    """The handler itself, in a fresh process: without Tune running, SIGTERM raises KeyboardInterrupt."""
    code = (
        "import os, signal\n"
        "from study import signals\n"
        "with signals.handled():\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        signal.pause()\n"
        "    except KeyboardInterrupt:\n"
        "        print('interrupted', signals.terminated())\n"
        "print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["interrupted", "True", "True"], done.stderr


# --------------------------------------------------------------------------------------------
# Finding 6: one resume hint, carrying what it takes to find the sweep again
# --------------------------------------------------------------------------------------------
def test_the_resume_hint_carries_only_what_differs_from_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    here = {"tracking_uri": default_tracking_uri(), "storage_path": default_storage_path()}
    assert resume_command(SCALING, "s", **here) == "relgrad scaling --resume --name s"
    assert resume_command(TUNE, "t", **here, experiment="mine") == (
        "relgrad tune --resume --name t --experiment mine"
    )
    odd = tmp_path / "my results"
    line = resume_command(
        SCALING, "s", tracking_uri="http://127.0.0.1:5000", storage_path=str(odd), address="auto"
    )
    assert shlex.split(line) == [
        "relgrad",
        "scaling",
        "--resume",
        "--name",
        "s",
        "--tracking-uri",
        "http://127.0.0.1:5000",
        "--storage-path",
        str(odd),
        "--address",
        "auto",
    ]
    summary = SweepSummary("s", SCALING, "http://127.0.0.1:5000", "1", "p", str(odd), {"ok": 1}, False)
    assert summary.lines()[-1] == f"sweep interrupted; continue it with: {summary.resume_command}"
    assert summary.resume_command == resume_command(
        SCALING, "s", tracking_uri="http://127.0.0.1:5000", storage_path=str(odd)
    )


def test_ctrl_c_before_tune_prints_the_same_hint(
    store: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("study.ray_runtime.start_ray", lambda *a, **k: None)
    monkeypatch.setattr("study.sweep.run_scaling", interrupted)
    where = ["--tracking-uri", store["uri"], "--storage-path", store["storage"]]
    assert main(["scaling", "--preset", "smoke", "--name", "s", *where]) == 130
    printed = _hint(capsys.readouterr().err)
    assert printed == shlex.split(
        resume_command(SCALING, "s", tracking_uri=store["uri"], storage_path=store["storage"])
    )


# --------------------------------------------------------------------------------------------
# Finding 7: --resume refuses what would change the sweep's grid or data
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--dims", "8,16"], "--dims"),
        (["--methods", "relative,ordinary"], "--methods"),
        (["--set", "train.epochs=2"], "--set"),
        (["--dataset", "noise"], "--dataset"),
        (["--data-file", "table.csv"], "--data-file"),
        (["--preset", "quick"], "--preset"),
        (["--device", "cpu", "--seed", "3"], "--seed, --device"),
    ],
)
def test_resume_refuses_flags_that_would_change_the_sweep(
    store: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    named: str,
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ray was started")

    monkeypatch.setattr("study.ray_runtime.start_ray", refuse)
    where = ["--tracking-uri", store["uri"], "--storage-path", store["storage"]]
    assert main(["scaling", "--resume", "--name", "s", *where, *extra]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"relgrad: error: --resume runs sweep 's' with the config it was started with; {named} would "
        "change it: drop them, or start a new sweep with another --name"
    )
    assert runs_of(store["uri"], "s") == []
