"""Every bad command line of the README's table: exit 2, one line naming the problem, before Ray or MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.bad_inputs import CLI_CASES, Case, applicable, render, run_case


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starting Ray is a test failure here: every case must be refused before it."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ray was started for a bad input")

    monkeypatch.setattr("study.ray_runtime.start_ray", refuse)


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.label for c in CLI_CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case: Case, tmp_path: Path, no_ray: None) -> None:
    if not applicable(case):
        pytest.skip("this machine has CUDA")
    row = run_case(case, tmp_path)
    assert row.outcome == "exit 2", row
    assert row.lines == 1 and not row.traceback, row.message
    assert case.expect in row.message
    assert row.runs == 0
    assert not Path(tmp_path, "ray_results", "bad").exists()


def test_render_escapes_pipes() -> None:
    from benchmarks.bad_inputs import Row

    table = render([Row("relgrad x --set a=b|c", "exit 2", "bad | value")])
    assert table.splitlines()[2] == "| `relgrad x --set a=b\\|c` | exit 2 | bad \\| value |"
