"""benchmarks.quality: the paired-difference helper by hand, selection on validation, and the --quick path."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks import quality
from benchmarks.quality import RunResult, RunSpec, ll_within_budget, paired_difference, select_by_validation


def test_paired_difference_matches_hand_computation() -> None:
    # d = a − b = (1, 2, 6): mean 3, sd² = ((−2)² + (−1)² + 3²)/2 = 7, SE = √(7/3)
    result = paired_difference([3.0, 5.0, 10.0], [2.0, 3.0, 4.0])
    assert result.n == 3
    assert result.diff == pytest.approx(3.0)
    assert result.se == pytest.approx(math.sqrt(7 / 3))
    assert result.mean_a == pytest.approx(6.0)
    assert result.mean_b == pytest.approx(3.0)
    assert result.wins_a == 3


def test_paired_difference_is_not_the_unpaired_one() -> None:
    # a shared per-seed offset cancels in the pairs: the SE is zero although both samples vary a lot
    result = paired_difference([10.0, 20.0, 30.0], [9.0, 19.0, 29.0])
    assert result.diff == pytest.approx(1.0)
    assert result.se == pytest.approx(0.0)


def test_paired_difference_single_pair_has_no_standard_error() -> None:
    result = paired_difference([1.5], [2.0])
    assert result.diff == pytest.approx(-0.5)
    assert math.isnan(result.se)
    assert result.wins_a == 0


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [([1.0, 2.0], [1.0], "equal lengths"), ([], [], "zero pairs"), ([1.0, math.nan], [1.0, 2.0], "finite")],
)
def test_paired_difference_rejects_bad_input(a: list[float], b: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        paired_difference(a, b)


def _result(
    val_ll: float | None, *, diverged: bool = False, trace: tuple = (), budget: float | None = None
) -> RunResult:
    spec = RunSpec("digits", "relative", 0, time_budget_s=budget)
    return RunResult(spec, val_ll, val_ll, 1, 1, 1, 0.0, "epochs", diverged, trace=list(trace))


def test_selection_uses_validation_and_penalises_divergence() -> None:
    groups = {
        "slow": [_result(-10.0), _result(-12.0)],
        "fast": [_result(-9.0), _result(-10.0)],
        "unstable": [_result(-1.0), _result(None, diverged=True)],
    }
    assert select_by_validation(groups) == "fast"


def test_ll_within_budget_takes_best_validation_point_inside_the_budget() -> None:
    trace = [(1.0, -5.0, -5.5), (2.0, -4.0, -4.2), (3.0, -4.5, -4.4), (4.05, -3.0, -3.1)]
    result = _result(-3.0, trace=trace, budget=4.0)
    assert ll_within_budget(result, 2.5) == {"val_ll": -4.0, "test_ll": -4.2, "train_time_s": 2.0}
    # the run's own budget also counts the evaluation that ends a fraction of a step past it
    assert ll_within_budget(result, 4.0)["test_ll"] == -3.1
    assert ll_within_budget(result, 0.5)["test_ll"] is None


def test_bad_cli_arguments_fail_before_any_work() -> None:
    with pytest.raises(SystemExit):
        quality.build_parser().parse_args(["--sections", "digits,nope"])
    with pytest.raises(SystemExit):
        quality.build_parser().parse_args(["--budgets", "10,-1"])
    with pytest.raises(SystemExit):
        quality.build_parser().parse_args(["--seeds", "0"])


def test_quick_run_writes_json_with_every_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "quality.json"
    quality.main(["--quick", "--out", str(out), "--device", "cpu"])
    payload = json.loads(out.read_text())
    assert set(payload) == {"machine", "plan", "sections", "markdown"}
    for key in ("cpu_model", "torch_threads", "torch_version", "date", "command"):
        assert key in payload["machine"]
    assert set(payload["sections"]) == {"digits", "teacher", "budget"}

    digits = payload["sections"]["digits"]["alpha=0.3"]
    reference = digits["comparisons"]["reference"]
    assert reference["seeds"] == [0, 1]
    assert {"diff", "se", "n", "mean_a", "mean_b", "wins_a"} <= set(reference["test"])
    assert set(digits["tuned"]["selected"]) == {"relative", "ordinary"}
    plateau = digits["plateau"]["runs"]
    assert [r["seed"] for r in plateau] == [0, 1]
    assert len(plateau[0]["grad_norm_ordinary"]) == len(plateau[0]["parameters"]) == 4
    assert "where the reference relative run stops" in payload["markdown"]
    # paired means: the difference is exactly the difference of the two method means
    test = reference["test"]
    assert test["diff"] == pytest.approx(test["mean_a"] - test["mean_b"])

    teacher = payload["sections"]["teacher"]["D=8"]["comparison"]
    assert teacher["true_test_ll"] > teacher["test"]["mean_a"] - 1e3
    assert {"candidate", "baseline"} == set(teacher["kl_gap"])

    budget = payload["sections"]["budget"]["D=16"]
    assert set(budget["ll_within_budget"]) == {"relative", "ordinary"}
    assert set(budget["ll_within_budget"]["relative"]) == {"0.2s", "0.5s"}
    assert "| comparison |" in capsys.readouterr().out
