"""Tiny scaling and HPO sweeps on the embedded Ray land the schema's runs in a sqlite store."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from study.cli import main
from tests.study.conftest import runs_of, write_preset

ENV_TAGS = (
    "device_name",
    "torch_version",
    "cuda_version",
    "cpu_model",
    "host",
    "node_id",
    "git_commit",
    "trial_id",
)
PARAMS = ("method", "dim", "depth", "batch_size", "lr", "alpha", "dataset", "device", "dtype", "seed")
TIMING = ("sec_per_iter", "sec_per_iter_min", "sec_per_iter_iqr", "peak_mem_mb")


def _children(runs: list) -> list:
    return [r for r in runs if r.data.tags.get("role") != "parent"]


def _curve(uri: str, run_id: str, key: str) -> dict[int, float]:
    """A parent-run curve as {D: value}; fails on a duplicated point."""
    history = MlflowClient(uri).get_metric_history(run_id, key)
    points = {int(m.step): m.value for m in history}
    assert len(points) == len(history), f"{key}: a D logged twice: {[(m.step, m.value) for m in history]}"
    return points


def _assert_tracked_params(runs: list) -> None:
    """No param says 'None'; no test-only field is recorded; children tag their grid point."""
    for run in runs:
        params = run.data.params
        assert "None" not in params.values(), {k: v for k, v in params.items() if v == "None"}
        assert not any(k.endswith("inject_worker_kill") for k in params)
        if run.data.tags.get("role") != "parent":
            for name in ("method", "dim", "depth", "batch_size"):
                assert run.data.tags[name] == params[name], name


def test_scaling_sweep_records_ok_diverged_and_skipped(
    ray_session, store: dict[str, str], tmp_path: Path
) -> None:
    # ordinary's budget is impossible to meet: its D=8 points must be skipped, not run.
    # lr 1e12 blows the weights up after one Adam step: a non-finite loss, i.e. `diverged`.
    preset = write_preset(tmp_path, scaling={"lrs": [0.01, 1e12], "budget_s": {"ordinary": 1e-9}})
    code = main(
        [
            "scaling",
            "--preset",
            preset,
            "--name",
            "tiny",
            "--tracking-uri",
            store["uri"],
            "--storage-path",
            store["storage"],
        ]
    )
    assert code == 0
    runs = runs_of(store["uri"], "tiny")
    parents = [r for r in runs if r.data.tags.get("role") == "parent"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.tags["kind"] == "scaling" and parent.info.status == "FINISHED"
    assert parent.data.params["methods"] == "relative,ordinary"
    # the machine's matmul peak, measured once on a trial's resources (smoke: a 128² GEMM, 1 thread)
    assert parent.data.metrics["matmul_peak_gflops"] > 0
    assert (parent.data.tags["matmul_peak_size"], parent.data.tags["matmul_peak_threads"]) == ("128", "1")
    assert parent.data.tags["matmul_peak_device"].startswith("cpu: ")

    children = _children(runs)
    by_key = {
        (r.data.params["method"], int(r.data.params["dim"]), float(r.data.params["lr"])): r for r in children
    }
    assert len(by_key) == len(children) == 8  # 2 methods x 2 dims x 2 lrs, none duplicated
    for run in children:
        tags = run.data.tags
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert tags["sweep"] == "tiny" and tags["role"] == "trial"
        assert all(name in run.data.params for name in PARAMS)
        assert tags["status_reason"]
    statuses = {key: r.data.tags["status"] for key, r in by_key.items()}
    assert statuses == {
        ("relative", 4, 0.01): "ok",
        ("relative", 8, 0.01): "ok",
        ("relative", 4, 1e12): "diverged",
        ("relative", 8, 1e12): "diverged",
        ("ordinary", 4, 0.01): "ok",
        ("ordinary", 4, 1e12): "diverged",
        ("ordinary", 8, 0.01): "skipped_over_budget",
        ("ordinary", 8, 1e12): "skipped_over_budget",
    }
    for key, run in by_key.items():
        metrics, tags = run.data.metrics, run.data.tags
        if statuses[key] == "skipped_over_budget":
            assert not set(TIMING) & set(metrics)  # skipped trials carry no timing
            assert "D=4" in tags["status_reason"] and "budget" in tags["status_reason"]
            continue
        assert all(name in tags for name in ENV_TAGS)
        assert tags["device_name"].startswith("cpu: ")
        assert all(metrics[name] >= 0 for name in TIMING)
        assert metrics["sec_per_iter_min"] <= metrics["sec_per_iter"]
        # counted work at the trial's own D and batch (16), depth 2: relative has no D³ work, ordinary's inv
        dim = key[1]
        assert metrics["flops_per_step"] > 0 and metrics["bytes_per_step"] > 0
        assert metrics["flops_cubic_per_step"] == (2 * 2 * dim**3 if key[0] == "ordinary" else 0)
        assert "uncounted_ops" not in tags
        assert run.data.params["device"] == "cpu"
        if statuses[key] == "ok":
            assert math.isfinite(metrics["test_ll"]) and math.isfinite(metrics["true_test_ll"])
            history = MlflowClient(store["uri"]).get_metric_history(run.info.run_id, "val_ll")
            assert [m.step for m in history] == [5, 10]  # cumulative steps, 2 evaluations
            assert {"train_ll", "train_data_nll", "train_time_s"} <= set(metrics)
            assert tags["stopped_reason"] in ("epochs", "epochs (still improving)")
        else:
            assert "step" in tags["status_reason"]
    _assert_tracked_params(runs)

    # The parent's curves against D: one point per ok trial (step = D), named after the method (one
    # depth and batch size here), valued as the trial's own metrics; diverged and skipped points add none.
    uri, parent_id = store["uri"], parent.info.run_id
    for method, dims in (("relative", (4, 8)), ("ordinary", (4,))):
        ok = {d: by_key[(method, d, 0.01)].data.metrics for d in dims}
        assert _curve(uri, parent_id, f"step_s/{method}") == {d: m["sec_per_iter_min"] for d, m in ok.items()}
        assert _curve(uri, parent_id, f"peak_mem_mb/{method}") == {d: m["peak_mem_mb"] for d, m in ok.items()}
        assert _curve(uri, parent_id, f"test_ll/{method}") == {
            d: m["reported_test_ll"] for d, m in ok.items()
        }
    yardstick = _curve(uri, parent_id, "gaussian_test_ll")
    assert set(yardstick) == {4, 8}
    assert yardstick[4] == pytest.approx(
        by_key[("relative", 4, 0.01)].data.metrics["reported_gaussian_test_ll"]
    )
    assert not [k for k in parent.data.metrics if "/L" in k or "/B" in k]


def test_hpo_sweep_with_optuna_and_best_retrain(
    ray_session, store: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "tune",
            "--preset",
            "smoke",
            "--name",
            "hpo",
            "--tracking-uri",
            store["uri"],
            "--storage-path",
            store["storage"],
        ]
    )
    assert code == 0
    runs = runs_of(store["uri"], "hpo")
    parent = next(r for r in runs if r.data.tags["role"] == "parent")
    assert parent.data.tags["kind"] == "hpo"
    trials = [r for r in runs if r.data.tags["role"] == "trial"]
    best = [r for r in runs if r.data.tags["role"] == "best"]
    default = [r for r in runs if r.data.tags["role"] == "default"]
    assert len(trials) == 3 and len(best) == 1 and len(default) == 1
    for run in trials:
        assert run.data.tags["status"] == "ok"
        assert run.info.status == "FINISHED"
        assert "val_ll" in run.data.metrics
        assert run.data.params["method"] == "relative" and run.data.params["dim"] == "4"
    [best_run] = best
    assert best_run.data.tags["status"] == "ok"
    assert math.isfinite(best_run.data.metrics["test_ll"])
    chosen = max(trials, key=lambda r: r.data.metrics["val_ll"])
    assert best_run.data.params["lr"] == chosen.data.params["lr"]
    # the default configuration (relgrad train's), retrained on the same schedule and data, beside it
    [default_run] = default
    assert (default_run.data.params["lr"], default_run.data.params["depth"]) == ("0.001", "2")
    assert default_run.data.params["train.epochs"] == best_run.data.params["train.epochs"]
    printed = capsys.readouterr().out
    # each retrain is a run of its own, named as such, apart from the search's count
    assert best_run.info.run_name.startswith("best-") and best_run.info.run_name != chosen.info.run_name
    assert default_run.info.run_name.startswith("default-")
    assert "sweep hpo: 3 ok" in printed
    assert f"retrained as {best_run.info.run_name}: test LL" in printed
    assert "Gaussian" in printed and "true" in printed
    assert f"default config retrained the same way as {default_run.info.run_name}: test LL" in printed
    assert "the search beats the default" in printed or "the search does not beat the default" in printed
    assert "stopped by" in printed
    # The Optuna study sits next to the MLflow db, where optuna-dashboard can open it.
    storage = f"sqlite:///{(tmp_path / 'runs' / 'optuna.db').as_posix()}"
    study = optuna.load_study(study_name="hpo", storage=storage)
    assert len(study.trials) == 3
    assert study.metric_names == ["val_ll"]
    # a trial ASHA stopped is PRUNED in the study, its last value among its intermediate values; the
    # others ran all their evaluations (2) and are COMPLETE
    by_lr = {float(t.params["lr"]): t for t in study.trials}
    for run in trials:
        trial = by_lr[float(run.data.params["lr"])]
        stopped = "stopped early by the scheduler" in run.data.tags["status_reason"]
        assert trial.state == (
            optuna.trial.TrialState.PRUNED if stopped else optuna.trial.TrialState.COMPLETE
        )
        assert (
            trial.intermediate_values
            and trial.value == trial.intermediate_values[max(trial.intermediate_values)]
        )
    assert [line for line in printed.splitlines() if line.startswith("[")] == [
        line for line in printed.splitlines() if line.startswith(("[1/3] ", "[2/3] ", "[3/3] "))
    ]
    _assert_tracked_params(runs)
    # the curves of a tune sweep: its depths and batch sizes vary, so they name the curves
    parent_metrics = parent.data.metrics
    assert parent_metrics and all(
        k == "gaussian_test_ll" or ("/L" in k and "/B" in k) for k in parent_metrics
    )


def test_train_one_run(store: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "train",
            "--dataset",
            "teacher",
            "--dim",
            "4",
            "--method",
            "relative",
            "--epochs",
            "2",
            "--steps-per-epoch",
            "3",
            "--batch-size",
            "8",
            "--n-train",
            "64",
            "--device",
            "cpu",
            "--name",
            "one",
            "--tracking-uri",
            store["uri"],
        ]
    )
    assert code == 0
    runs = runs_of(store["uri"], "one")
    child = next(r for r in runs if r.data.tags["role"] == "trial")
    assert child.data.tags["status"] == "ok"
    assert {"sec_per_iter", "val_ll", "test_ll", "train_ll", "kl_gap"} <= set(child.data.metrics)
    printed = capsys.readouterr().out
    # the hint carries the store the run used (not the default one): it works as printed
    assert f"relgrad ui --sweep one --tracking-uri {store['uri']}" in printed
    # the closing line is a result: test LL against the Gaussian and the truth, and why it stopped
    (closing,) = [line for line in printed.splitlines() if line.startswith("one: ")]
    assert "test LL" in closing and "Gaussian" in closing and "KL gap" in closing
    assert "stopped by epochs" in closing and "after 6 steps" in closing
    parent = next(r for r in runs if r.data.tags["role"] == "parent")
    assert _curve(store["uri"], parent.info.run_id, "step_s/relative") == {
        4: child.data.metrics["sec_per_iter_min"]
    }
    _assert_tracked_params(runs)
