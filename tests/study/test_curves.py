"""Curves on a sweep's parent run: keys, one point per D, no duplicate after a resume."""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace

from mlflow.tracking import MlflowClient

from analysis.schema import curve_key
from study.curves import CurveAxes, ParentCurves
from study.tracking import create_parent, ensure_experiment, log_metrics
from study.tune_callbacks import ParentCurveLogger

POINT = {"method": "relative", "dim": 64, "depth": 4, "batch_size": 256, "lr": 1e-3}
METRICS = {
    "sec_per_iter_min": 0.5,
    "peak_mem_mb": 12.0,
    "reported_test_ll": -80.0,
    "reported_gaussian_test_ll": -90.0,
    "val_ll": -81.0,  # not a curve
}


def _parent(tmp_path: Path) -> tuple[str, str]:
    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    return uri, create_parent(uri, ensure_experiment(uri), "curves", "scaling", {})


def _points(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in MlflowClient(uri).get_metric_history(run_id, key))


def test_keys_name_the_axes_a_sweep_varies() -> None:
    assert curve_key("step_s", "relative") == "step_s/relative"
    assert CurveAxes().points(POINT, METRICS) == {
        "step_s/relative": 0.5,
        "peak_mem_mb/relative": 12.0,
        "test_ll/relative": -80.0,
        "gaussian_test_ll": -90.0,  # the yardstick depends on the data only: one curve
    }
    assert set(CurveAxes.of([2, 4], [256]).points(POINT, METRICS)) == {
        "step_s/relative/L4",
        "peak_mem_mb/relative/L4",
        "test_ll/relative/L4",
        "gaussian_test_ll",
    }
    both = CurveAxes.of([2, 4], [64, 256]).points(POINT, {"sec_per_iter_min": 0.5, "test_ll": float("nan")})
    assert both == {"step_s/relative/L4/B256": 0.5}  # what a trial did not measure is left out


def test_one_point_per_d_also_after_a_resume(tmp_path: Path) -> None:
    uri, parent = _parent(tmp_path)
    first = ParentCurves(uri, parent, CurveAxes())
    assert first.log(POINT, METRICS) == CurveAxes().points(POINT, METRICS)
    assert first.log(POINT, {**METRICS, "sec_per_iter_min": 0.7}) == {}  # another lr at the same D
    first.log({**POINT, "dim": 128}, {**METRICS, "sec_per_iter_min": 1.5})
    # a resumed sweep's driver starts from what the run holds: the trials it reports again add nothing
    resumed = ParentCurves(uri, parent, CurveAxes())
    assert resumed.log(POINT, METRICS) == {}
    assert resumed.log({**POINT, "dim": 256}, {"sec_per_iter_min": 4.0}) == {"step_s/relative": 4.0}
    assert _points(uri, parent, "step_s/relative") == [(64, 0.5), (128, 1.5), (256, 4.0)]
    assert _points(uri, parent, "gaussian_test_ll") == [(64, -90.0), (128, -90.0)]


def test_the_tune_callback_logs_ok_and_scheduler_stopped_trials_only(tmp_path: Path) -> None:
    uri, parent = _parent(tmp_path)
    callback = pickle.loads(pickle.dumps(ParentCurveLogger(uri, parent, CurveAxes())))  # as Tune restores it
    for dim, status in ((8, "ok"), (16, "running"), (32, "diverged"), (64, None)):
        trial = SimpleNamespace(
            trial_id=f"t{dim}", config={**POINT, "dim": dim}, last_result={**METRICS, "status": status}
        )
        callback.on_trial_complete(0, [], trial)
    assert [d for d, _ in _points(uri, parent, "step_s/relative")] == [8, 16]
    # a store that fails is logged, never raised into Tune's loop
    broken = ParentCurveLogger(f"sqlite:///{tmp_path.as_posix()}/no/such/dir/x.db", parent, CurveAxes())
    broken.on_trial_complete(0, [], SimpleNamespace(trial_id="t", config=POINT, last_result={"status": "ok"}))


def test_backfill_adds_what_the_callback_missed(tmp_path: Path) -> None:
    from study.sweep import prepare_tracking
    from study.tracking import child_runs, finish_child, start_child

    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    ctx = prepare_tracking(uri, "relgrad", "fill", "scaling", {}, resume=False)
    for dim, status in ((8, "ok"), (16, "ok"), (32, "diverged")):
        params = {**POINT, "dim": dim}
        run_id = start_child(ctx, f"t{dim}", params)
        log_metrics(uri, run_id, {"sec_per_iter_min": dim / 1000})
        finish_child(uri, run_id, status)
    curves = ParentCurves(uri, ctx.parent_run_id, CurveAxes())
    curves.log({**POINT, "dim": 8}, {"sec_per_iter_min": 0.008})  # the callback saw this one
    assert curves.backfill(child_runs(uri, ctx.experiment_id, "fill")) == {"step_s/relative": 0.016}
    assert _points(uri, ctx.parent_run_id, "step_s/relative") == [(8, 0.008), (16, 0.016)]
