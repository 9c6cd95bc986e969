"""Loading sweeps from a fake MLflow store: typed columns, histories, and clear bad-input errors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from analysis import ReportError, build_report, load_runs
from analysis.loading import learning_curves, load_sweep_data


def test_load_runs_types_and_counts(fake_store: Any) -> None:
    runs = load_runs(fake_store.scaling, tracking_uri=fake_store.tracking_uri)
    # every trial, ok or not: methods × dims × seeds plus the one failed trial
    assert len(runs) == len(fake_store.methods) * len(fake_store.dims) * len(fake_store.seeds) + 1
    for col in ("dim", "depth", "batch_size", "seed"):
        assert runs[col].dtype == "Int64"
    for col in ("lr", "alpha", "sec_per_iter", "peak_mem_mb", "val_ll", "true_test_ll"):
        assert runs[col].dtype == "float64"
    assert pd.api.types.is_string_dtype(runs["method"])
    assert isinstance(runs["start_time"].dtype, pd.DatetimeTZDtype)
    assert set(runs["method"]) == set(fake_store.methods)
    assert runs["status"].value_counts().to_dict() == {
        "ok": 57,
        "skipped_over_budget": 2,
        "diverged": 1,
        "failed": 1,
    }
    skipped = runs[runs["status"] == "skipped_over_budget"]
    assert skipped["sec_per_iter"].isna().all()
    assert (skipped["status_reason"] != "").all()
    assert (runs["parent_run_id"] == fake_store.scaling_parent).all()
    assert (runs["device_name"] == fake_store.device).all()


def test_histories_and_learning_curves(fake_store: Any) -> None:
    data = load_sweep_data([fake_store.scaling, fake_store.hpo], tracking_uri=fake_store.tracking_uri)
    assert [s.kind for s in data.sweeps] == ["scaling", "hpo"]
    assert len(data.best) == 1 and data.best["test_ll"].iloc[0] == pytest.approx(-80.7)
    hist = data.histories
    assert set(hist["metric"]) == {"val_ll", "train_ll", "train_time_s"}
    curves = learning_curves(data)
    one = curves[curves["run_id"] == curves["run_id"].iloc[0]]
    assert list(one["step"]) == sorted(one["step"])
    assert one["val_ll"].is_monotonic_increasing  # the fake curves approach the truth


def test_unknown_sweep_names_the_sweep_and_lists_known(fake_store: Any) -> None:
    with pytest.raises(ReportError, match=r"unknown sweep 'nope'.*fake-scaling"):
        load_runs("nope", tracking_uri=fake_store.tracking_uri)


def test_unknown_experiment(fake_store: Any) -> None:
    with pytest.raises(ReportError, match=r"experiment 'other' not found"):
        load_runs(fake_store.scaling, tracking_uri=fake_store.tracking_uri, experiment="other")


@pytest.mark.parametrize("bad", [[], "", ["it's"]])
def test_bad_sweep_names(fake_store: Any, bad: object) -> None:
    with pytest.raises(ReportError):
        load_runs(bad, tracking_uri=fake_store.tracking_uri)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def broken_store(tmp_path_factory: pytest.TempPathFactory, store_builder: Callable[..., Any]) -> Any:
    """One method only, one `ok` trial without sec_per_iter, and a sweep without trials."""
    return store_builder(
        tmp_path_factory.mktemp("broken"),
        hpo=False,
        methods=("relative",),
        omit_metric_in_one_trial="sec_per_iter",
        empty_sweep="empty-sweep",
    )


def test_empty_sweep(broken_store: Any, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"sweep 'empty-sweep' is empty"):
        build_report("empty-sweep", tracking_uri=broken_store.tracking_uri, out_dir=tmp_path)


def test_missing_required_metric_names_metric_and_runs(broken_store: Any, tmp_path: Path) -> None:
    sweep = broken_store.scaling
    runs = load_runs(sweep, tracking_uri=broken_store.tracking_uri, check_metrics=False)
    missing = runs.loc[(runs["status"] == "ok") & runs["sec_per_iter"].isna(), "run_id"]
    assert len(missing) == len(broken_store.seeds)
    with pytest.raises(ReportError, match=r"'sec_per_iter'") as err:
        build_report(sweep, tracking_uri=broken_store.tracking_uri, out_dir=tmp_path / "r")
    assert sweep in str(err.value)
    assert all(run_id in str(err.value) for run_id in missing)
    assert not (tmp_path / "r").exists()  # refused before writing anything


def test_bad_report_arguments(fake_store: Any, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="min_dim"):
        build_report(fake_store.scaling, tracking_uri=fake_store.tracking_uri, out_dir=tmp_path, min_dim=0)
    with pytest.raises(ReportError, match="tracking_uri"):
        build_report(fake_store.scaling, tracking_uri="", out_dir=tmp_path)


def test_importing_analysis_never_imports_torch_or_study() -> None:
    code = (
        "import sys, analysis, analysis.report, analysis.figures\n"
        "bad = [m for m in ('torch', 'ray', 'study', 'relgrad_core') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
