"""Plugins that fail (issue 17, finding 10): a module that raises at import is one line and exit 2; a method
that raises in a trial leaves that trial its own exception as its reason, not a generic one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.schema import STATUS_FAILED, STATUS_OK, TAG_STATUS_REASON
from tests.study.conftest import runs_of, write_preset

REPO = Path(__file__).resolve().parents[2]

#: A method that works at D ≤ 4 and raises beyond, registered at import.
BOOM = """
from relgrad_core import DenseFlow, FlopModel, MethodSpec, register_method
from relgrad_core.gradients import data_term_direction


def boom(flow, x):
    if flow.dim > 4:
        raise RuntimeError(f"boom at D={flow.dim}")
    return data_term_direction(flow, x)


register_method(MethodSpec("boom", DenseFlow, boom, FlopModel(lambda depth, gaussian: 6 * depth), order=46))
"""


def _relgrad(args: list[str], cwd: Path, plugins: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RELGRAD_TUNE_VERBOSE": "0", "MPLBACKEND": "Agg"}
    env.update(PYTHONPATH=os.pathsep.join([str(cwd), str(REPO)]), RELGRAD_PLUGINS=plugins)
    command = [sys.executable, "-m", "study.cli", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('raise RuntimeError("no licence\\nfor this")', "raised RuntimeError at import: no licence for this"),
        ("x = 1 / 0", "raised ZeroDivisionError at import: division by zero"),
        ("import not_a_module_anywhere", "cannot import plugin module 'broken_plugin': No module named"),
    ],
)
def test_a_plugin_that_raises_at_import_is_one_line_exit_2(
    tmp_path: Path, source: str, expected: str
) -> None:
    (tmp_path / "broken_plugin.py").write_text(source + "\n")
    done = _relgrad(["train", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"], tmp_path, "broken_plugin")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("relgrad: error: RELGRAD_PLUGINS:") and expected in lines[0]
    if "No module" not in expected:
        assert "plugin module 'broken_plugin'" in lines[0]
    assert not (tmp_path / "m.db").exists()  # nothing recorded


@pytest.mark.slow
def test_a_failing_plugin_method_keeps_its_own_error_as_the_reason(
    tmp_path: Path, store: dict[str, str]
) -> None:
    (tmp_path / "boom_plugin.py").write_text(BOOM)
    preset = write_preset(
        tmp_path, scaling={"methods": ["boom"], "dims": [4, 8], "resources": {"max_failures": 1}}
    )
    where = ["--tracking-uri", store["uri"], "--storage-path", store["storage"], "--num-cpus", "1"]
    done = _relgrad(["scaling", "--preset", preset, "--name", "boom", *where], tmp_path, "boom_plugin")
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    runs = {int(r.data.params["dim"]): r for r in runs_of(store["uri"], "boom") if r.data.params.get("dim")}
    assert runs[4].data.tags["status"] == STATUS_OK
    failed = runs[8]
    assert failed.data.tags["status"] == STATUS_FAILED and failed.info.status == "FAILED"
    assert failed.data.tags[TAG_STATUS_REASON] == "RuntimeError: boom at D=8"
    assert failed.data.tags["attempts"] == "2"  # retried once (max_failures 1), in the same run
