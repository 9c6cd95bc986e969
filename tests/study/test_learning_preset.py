"""The learning preset's pipeline end to end on tiny D: seeds and per-method learning rates reach the trials,
every fit says how it stopped, and the convergence analysis pairs the methods by seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis import convergence
from analysis.loading import learning_curves, load_sweep_data
from study.cli import main
from study.config import load_preset


def test_the_learning_preset_is_the_designed_study() -> None:
    cfg = load_preset("learning").scaling
    assert cfg.methods == ["relative", "ordinary", "lu"] and (min(cfg.dims), max(cfg.dims)) == (16, 512)
    assert cfg.seeds_of() == [0, 1, 2] and set(cfg.lr_per_method) == set(cfg.methods)
    assert cfg.data.dataset == "teacher"
    assert cfg.train.epochs is None and cfg.train.patience is not None  # every fit until patience
    points = cfg.points()
    assert len(points) == 3 * 6 * 3
    assert {p["lr"] for p in points if p["method"] == "lu"} == {cfg.lr_per_method["lu"]}


def test_learning_pipeline_runs_end_to_end(
    ray_session, store: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "scaling",
            "--preset",
            "learning",
            "--dims",
            "4,8",
            "--name",
            "learn",
            "--tracking-uri",
            store["uri"],
            "--storage-path",
            store["storage"],
            "--device",
            "cpu",
            "--set",
            "seeds=[0, 1]",
            "--set",
            "data={dataset: teacher, n_train: 128, n_val: 32, n_test: 64, teacher_depth: 1}",
            "--set",
            "train.steps_per_epoch=40",
            "--set",
            "train.patience=2",
            "--set",
            "train.time_budget_s=20",
            "--report",
            "--report-dir",
            str(tmp_path / "report"),
        ]
    )
    assert code == 0
    # the headline answers the question per D: KL gap at convergence, the pairing, who was first
    printed = capsys.readouterr().out
    for dim in (4, 8):
        (line,) = [
            x for x in printed.splitlines() if x.strip().startswith(f"D = {dim}: KL gap at convergence")
        ]
        assert "relative" in line and "ordinary" in line and "lu" in line and "first within 1 nat" in line
    data = load_sweep_data("learn", tracking_uri=store["uri"])
    runs = data.runs
    assert len(runs) == 3 * 2 * 2 and set(runs["status"]) == {"ok"}
    assert set(runs["seed"]) == {0, 1}
    assert set(runs.loc[runs["method"] == "lu", "lr"]) == {3e-4}  # lr_per_method reached the trials
    assert (runs["stopped_reason"] != "").all()
    outcomes = convergence.trial_outcomes(runs, learning_curves(data))
    kl = convergence.kl_at_convergence(outcomes)
    assert set(zip(kl["dim"], kl["method"], strict=True)) == {
        (d, m) for d in (4, 8) for m in ("relative", "ordinary", "lu")
    }
    paired = convergence.paired_difference(outcomes)
    assert set(paired["dim"]) <= {4, 8} and (paired["n_pairs"] <= 2).all()
    times = convergence.time_to_target(outcomes, learning_curves(data))
    assert len(times) == len(outcomes) and times["time_to_target_s"].notna().any()
    # the report wrote each trial's time to target back onto its run, for the MLflow UI
    reached = times.dropna(subset=["time_to_target_s"]).set_index("run_id")["time_to_target_s"]
    logged = runs.set_index("run_id")["time_to_target_s"].dropna()
    assert logged.to_dict() == pytest.approx(reached.to_dict())
    assert runs["kl_gap"].notna().all() and runs["gain_over_gaussian"].notna().all()
    assert pytest.approx(runs["kl_gap"].tolist()) == (runs["true_test_ll"] - runs["test_ll"]).tolist()
