"""Every public entry point of the core refuses bad input with one line that names the problem."""

from __future__ import annotations

import pytest

from benchmarks.bad_inputs import LIBRARY_CASES, run_library_case
from benchmarks.bad_library_inputs import ACCEPTED, expected_fragment


@pytest.mark.parametrize(("label", "call"), LIBRARY_CASES, ids=[label for label, _ in LIBRARY_CASES])
def test_library_case(label: str, call) -> None:
    row = run_library_case(label, call)
    if label in ACCEPTED:
        assert row.outcome == "accepted", row
        return
    assert row.outcome in {"ValueError", "TypeError"}, row
    assert row.lines == 1, row
    assert expected_fragment(label) in row.message, row


def test_every_argument_case_has_an_expectation() -> None:
    for label, _ in LIBRARY_CASES:
        if label not in ACCEPTED:
            assert expected_fragment(label)
