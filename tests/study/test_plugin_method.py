"""A method of one's own, added by registering it, reaches config validation, a sweep and the report.

The user's path exactly: a module that calls ``register_method`` at import, named in ``RELGRAD_PLUGINS``,
and the ``relgrad`` command in its own process (so its embedded Ray's workers import the plugin too).
Nothing else in the repository is edited.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from study.cli import main
from tests.study.conftest import runs_of, write_preset

PLUGIN = '''
"""A made-up method: half the MLP's direction, registered at import."""
from relgrad_core import DenseFlow, FlopModel, MethodSpec, register_method
from relgrad_core.gradients import data_term_direction


def halved(flow, x):
    loss = data_term_direction(flow, x)
    for p in flow.parameters():
        p.grad.mul_(0.5)
    return loss


register_method(
    MethodSpec("halved", DenseFlow, halved, FlopModel(lambda depth, gaussian: 6 * depth - 2), order=45)
)
'''


def _relgrad(args: list[str], tmp_path: Path, plugins: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RELGRAD_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(RAY_AUTH_MODE="disabled", MPLBACKEND="Agg")
    if plugins:
        env["RELGRAD_PLUGINS"] = plugins
    command = [sys.executable, "-m", "study.cli", *args]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def test_a_registered_method_flows_through_sweep_and_report(
    tmp_path: Path,
    store: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "halved_plugin.py").write_text(PLUGIN)
    preset = write_preset(
        tmp_path, scaling={"methods": ["relative", "halved"], "dims": [4, 8, 16, 32], "lrs": [0.001]}
    )
    where = ["--tracking-uri", store["uri"], "--storage-path", store["storage"], "--num-cpus", "2"]
    out = tmp_path / "report"

    # without the plugin the name is refused by config validation: one line, exit 2, nothing run
    # (in-process: this process never imports the plugin; the entry point is exercised below)
    monkeypatch.delenv("RELGRAD_PLUGINS", raising=False)
    assert main(["scaling", "--preset", preset, "--name", "plug", *where]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'halved'" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert runs_of(store["uri"], "plug") == []

    args = ["scaling", "--preset", preset, "--name", "plug", *where, "--report", "--report-dir", str(out)]
    done = _relgrad(args, tmp_path, "halved_plugin")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]

    trials = [r for r in runs_of(store["uri"], "plug") if r.data.tags.get("role") != "parent"]
    methods = [r.data.params["method"] for r in trials]
    assert sorted(methods) == sorted(["relative", "halved"] * 4)
    assert all(r.data.tags.get("status") == "ok" for r in trials), [r.data.tags for r in trials]

    verdicts = pd.read_csv(out / "tables" / "verdicts_runtime.csv")
    assert set(verdicts["method"]) == {"relative", "halved"}
    assert "halved" in (out / "report.md").read_text()
