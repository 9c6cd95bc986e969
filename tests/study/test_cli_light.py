"""The command answers at once: ``relgrad --help`` and plain usage errors load no heavy library.

Timing itself is measured in BENCHMARKS.md (``relgrad --help``, median of 5); here the tests check what
makes it fast: which modules the parsing and the error paths import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "mlflow", "ray", "pandas", "matplotlib", "optuna", "relgrad_core")


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("RELGRAD_PLUGINS", None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, env=env
    )


def test_relgrad_help_works_as_an_entry_point() -> None:
    relgrad = shutil.which("relgrad") or str(Path(sys.executable).parent / "relgrad")
    if not Path(relgrad).exists():
        pytest.skip("the relgrad entry point is not installed (pip install -e .)")
    result = subprocess.run([relgrad, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stderr == ""
    for command in ("scaling", "tune", "train", "ui", "report"):
        assert command in result.stdout


def test_usage_errors_import_nothing_heavy() -> None:
    result = _python(
        f"""
        import contextlib, io, sys
        from study.cli import main
        cases = [
            ["scaling", "--frobnicate"],
            ["scaling", "--dims", "64:32:x2"],
            ["scaling", "--dims", "0,8"],
            ["scaling", "--methods", "relative,bogus"],
            ["train", "--method", "bogus"],
            ["tune", "--samples", "0"],
            ["scaling", "--preset", "nosuch"],
            ["scaling", "--preset", "nosuch.yaml"],
            ["scaling", "--name", "../x"],
            ["report", "--sweep", "x", "--predict-dims", "0"],
            ["ui", "--name", "x"],
        ]
        for argv in cases:
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                assert main(argv) == 2, argv
            print(err.getvalue().strip())
        print("LOADED", sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r})))
        """
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "LOADED []"
    assert all(line.startswith("relgrad: error: ") for line in lines[:-1]), lines
    # (the installed peers follow the built-ins in the list)
    assert lines[3].startswith(
        "relgrad: error: --methods: unknown method 'bogus' (choose from relative, ordinary, autodiff, "
        "jacobian, lu, mlp"
    )
    assert lines[7].startswith("relgrad: error: --preset nosuch.yaml: no such file")


def test_the_registry_free_method_names_are_the_registry() -> None:
    # what validation accepts before torch is loaded is exactly what the registry holds once it is
    result = _python(
        """
        from study.names import registry_free_methods
        free = registry_free_methods()
        import relgrad_core
        print(free == relgrad_core.method_names(), free)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("True ("), result.stdout
