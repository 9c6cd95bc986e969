"""Fast guards of the sweep runtime (no Ray): stores opened before work, safe sweep names, JSON searcher
state, exit codes, interrupt vs scheduler stop in ``run_logged``, stale-run reconciliation, a finaliser
that survives a dead store, and the sqlite schema set-up race."""

from __future__ import annotations

import json
import multiprocessing
import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest

from analysis.schema import STATUS_FAILED, STATUS_INTERRUPTED, STATUS_OK, STATUS_RUNNING, STATUSES
from study import tracking
from study.config import ConfigError, DataConfig, TrainConfig
from study.finalise import MlflowFinaliser, SweepSummary, reset_problem, trial_error
from study.kinds import SCALING
from study.preflight import check_storage
from study.searcher import BudgetedGridSearcher
from study.sweep import prepare_tracking
from study.trial import SweepContext, point_key, run_logged

POINT = {"method": "relative", "dim": 3, "depth": 1, "batch_size": 8, "lr": 1e-3, "alpha": 0.3, "seed": 0}


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert message and "\n" not in message
    return message


# --------------------------------------------------------------------------------------------
# Finding 8: the store is really opened before any work
# --------------------------------------------------------------------------------------------
def test_sqlite_store_in_proc_is_refused_at_once() -> None:
    # As root, os.access calls /proc writable: only opening the file tells.
    with pytest.raises(ConfigError) as exc:
        tracking.check_tracking_uri("sqlite:////proc/relgrad-x.db")
    assert "/proc/relgrad-x.db" in _one_line(exc)


def test_sqlite_store_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "store.db").mkdir()  # the folder is writable, the "file" is not a database
    with pytest.raises(ConfigError) as exc:
        tracking.check_tracking_uri(f"sqlite:///{tmp_path}/store.db")
    assert "store.db" in _one_line(exc)


def test_sqlite_store_is_created_when_usable(tmp_path: Path) -> None:
    tracking.check_tracking_uri(f"sqlite:///{tmp_path}/new/mlflow.db")
    assert (tmp_path / "new" / "mlflow.db").is_file()


def test_database_url_without_its_driver_is_refused() -> None:
    pytest.importorskip("sqlalchemy")
    try:
        import psycopg2  # noqa: F401

        pytest.skip("psycopg2 is installed here")
    except ImportError:
        pass
    with pytest.raises(ConfigError) as exc:
        tracking.check_tracking_uri("postgresql://user@127.0.0.1:1/relgrad")
    message = _one_line(exc)
    assert "postgresql" in message and "driver" in message


# --------------------------------------------------------------------------------------------
# Finding 5 (runtime half): names are checked, and results stay under the storage path
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["o'b", "../escape", "a/../../b", "/abs", "", ".hidden", "x" * 129, "a b"])
def test_bad_sweep_names_are_refused_before_anything_is_written(tmp_path: Path, name: str) -> None:
    storage = tmp_path / "ray_results"
    with pytest.raises(ConfigError) as exc:
        check_storage(str(storage), name, resume=False)
    assert "sweep name" in _one_line(exc)
    assert not storage.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_good_sweep_name_lands_under_the_storage_path(tmp_path: Path) -> None:
    storage = check_storage(str(tmp_path / "ray_results"), "quick-20260101.v2_a", resume=False)
    assert Path(storage) == (tmp_path / "ray_results").resolve() and Path(storage).is_dir()


# --------------------------------------------------------------------------------------------
# Finding 10: the searcher's state is JSON, never unpickled
# --------------------------------------------------------------------------------------------
def _searcher() -> BudgetedGridSearcher:
    points = [dict(POINT, dim=d, method=m) for m in ("relative", "ordinary") for d in (4, 8)]
    return BudgetedGridSearcher(points, {"relative": None, "ordinary": 0.5})


def test_searcher_state_round_trips_as_json(tmp_path: Path) -> None:
    searcher = _searcher()
    searcher.suggest("t1")
    searcher.on_trial_complete("t1", {"sec_per_iter": 1.0})
    path = tmp_path / "searcher.json"
    searcher.save(str(path))
    saved = json.loads(path.read_text())  # plain JSON on disk
    restored = _searcher()
    restored.restore(str(path))
    assert restored.get_state() == json.loads(json.dumps(searcher.get_state())) == saved
    assert restored.suggest("t2") == searcher.suggest("t2")


def test_searcher_never_unpickles(tmp_path: Path) -> None:
    path = tmp_path / "searcher.pkl"
    path.write_bytes(pickle.dumps(_searcher().get_state()))
    with pytest.raises((ValueError, UnicodeDecodeError)):
        _searcher().restore(str(path))


# --------------------------------------------------------------------------------------------
# Findings 1, 6, 7: the exit code says what happened
# --------------------------------------------------------------------------------------------
def _summary(statuses: dict[str, int], complete: bool, problem: str | None = None) -> SweepSummary:
    return SweepSummary("s", SCALING, "uri", "1", "p", "/x", statuses, complete, problem=problem)


def test_exit_codes_and_lines() -> None:
    ok = _summary({"ok": 3, "diverged": 1, "skipped_over_budget": 2}, True)
    assert ok.exit_code == 0 and not any("--resume" in line for line in ok.lines())
    failed = _summary({"failed": 4}, True)
    assert failed.exit_code == 1 and "4 trial(s) failed" in "\n".join(failed.lines())
    cut = _summary({"ok": 1, STATUS_INTERRUPTED: 1}, False)
    assert cut.lines()[-1].endswith("relgrad scaling --resume --name s --tracking-uri uri --storage-path /x")
    assert cut.exit_code == 130
    outage = _summary({}, False, problem="the tracking store uri failed (ConnectionError: down)")
    assert outage.exit_code == 130 and any("tracking store" in line for line in outage.lines())


# --------------------------------------------------------------------------------------------
# Finding 1: run_logged tells a user interrupt from the scheduler's early stop
# --------------------------------------------------------------------------------------------
def _ctx(uri: str, sweep: str = "unit") -> SweepContext:
    tctx = prepare_tracking(uri, "relgrad", sweep, "scaling", {}, resume=False)
    data = DataConfig(dataset="teacher", n_train=64, n_val=16, n_test=16, teacher_depth=1)
    train = TrainConfig(epochs=3, steps_per_epoch=2, timing_warmup=1, timing_repeats=2, device="cpu")
    return SweepContext(tracking=tctx, data=data, train=train, dedupe_points=True)


def _child(ctx: SweepContext):
    runs = tracking.child_runs(ctx.tracking.tracking_uri, ctx.tracking.experiment_id, ctx.tracking.sweep)
    assert len(runs) == 1
    return runs[0]


def test_a_tune_stop_during_shutdown_is_interrupted_not_ok(store: dict[str, str]) -> None:
    ctx = _ctx(store["uri"])

    def report(result: dict) -> None:
        if result.get("status") == "running":
            raise SystemExit(0)  # what Tune's report does when the trial is stopped

    with pytest.raises(SystemExit):
        run_logged(POINT, ctx, "t1", report=report)
    run = _child(ctx)
    assert run.data.tags["status"] == STATUS_INTERRUPTED and run.info.status == "KILLED"
    assert "interrupted" in run.data.tags["status_reason"]


def test_a_keyboard_interrupt_in_the_trial_is_interrupted_not_failed(store: dict[str, str]) -> None:
    ctx = _ctx(store["uri"])

    def report(result: dict) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_logged(POINT, ctx, "t1", report=report)
    assert _child(ctx).data.tags["status"] == STATUS_INTERRUPTED


def test_a_scheduler_stop_recorded_by_the_driver_stays_ok(store: dict[str, str]) -> None:
    ctx = _ctx(store["uri"])
    finaliser = MlflowFinaliser(ctx)
    trial = SimpleNamespace(trial_id="t1", config=POINT, last_result={"training_iteration": 1})

    def report(result: dict) -> None:
        if result.get("status") == "running":
            finaliser.on_trial_complete(0, [], trial)  # ASHA's stop: the driver records it first
            raise SystemExit(0)

    with pytest.raises(SystemExit):
        run_logged(POINT, ctx, "t1", report=report)
    run = _child(ctx)
    assert run.data.tags["status"] == STATUS_OK and "scheduler" in run.data.tags["status_reason"]


# --------------------------------------------------------------------------------------------
# Finding 3: stale RUNNING children of a dead driver; one run per grid point
# --------------------------------------------------------------------------------------------
def test_resume_marks_a_dead_drivers_running_children_interrupted(store: dict[str, str]) -> None:
    ctx = _ctx(store["uri"], "dead")
    run_id = tracking.start_child(ctx.tracking, "t1", {"method": "relative"}, point_key=point_key(POINT))
    assert _child(ctx).data.tags["status"] == STATUS_RUNNING
    # the parent's driver is this very process: treated as gone (a resume is a new process)
    resumed = prepare_tracking(store["uri"], "relgrad", "dead", "scaling", {}, resume=True)
    run = _child(ctx)
    assert resumed.parent_run_id == ctx.tracking.parent_run_id
    assert run.info.run_id == run_id and run.info.status == "KILLED"
    assert run.data.tags["status"] == STATUS_INTERRUPTED and "--resume" in run.data.tags["status_reason"]
    # the same grid point re-suggested under a new Tune trial id lands in the same run
    again = tracking.start_child(ctx.tracking, "t9", {"method": "relative"}, point_key=point_key(POINT))
    run = _child(ctx)
    assert again == run_id and run.data.tags["attempts"] == "2" and run.data.tags["trial_id"] == "t9"


def test_resume_refuses_while_the_driver_lives(store: dict[str, str]) -> None:
    ctx = _ctx(store["uri"], "alive")
    parent = ctx.tracking.parent_run_id
    host = tracking.driver_id().rsplit(":", 1)[0]
    tracking.set_tags(store["uri"], parent, {tracking.TAG_DRIVER: f"{host}:1"})  # pid 1 is always alive
    with pytest.raises(ConfigError, match="still running"):
        prepare_tracking(store["uri"], "relgrad", "alive", "scaling", {}, resume=True)


# --------------------------------------------------------------------------------------------
# Finding 7: the finaliser survives a store that is down
# --------------------------------------------------------------------------------------------
def test_finaliser_notes_a_dead_store_instead_of_raising(
    store: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = _ctx(store["uri"], "outage")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    down = SweepContext(
        tracking=tracking.TrackingContext("http://127.0.0.1:9", "1", "p", "outage", "scaling", "c"),
        data=ctx.data,
        train=ctx.train,
    )
    trial = SimpleNamespace(trial_id="t1", config=POINT, last_result={}, error_msg="boom")
    reset_problem("outage")
    MlflowFinaliser(down).on_trial_error(0, [], trial)  # must not raise
    MlflowFinaliser(down).on_trial_complete(0, [], trial)
    assert tracking.problem("outage") is not None
    reset_problem("outage")


# --------------------------------------------------------------------------------------------
# Issue 17, finding 10: a failed trial keeps its own error as its reason
# --------------------------------------------------------------------------------------------
def _tune_trial(trial_id: str, pickled: object = None, text: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        trial_id=trial_id,
        config=POINT,
        last_result={},
        get_pickled_error=lambda: pickled,
        get_error=lambda: text,
    )


def test_a_trial_that_recorded_its_own_error_keeps_it(store: dict[str, str]) -> None:
    ctx = _ctx(store["uri"], "own-error")
    run_id = tracking.start_child(ctx.tracking, "t1", {}, point_key=point_key(POINT))
    tracking.finish_child(
        store["uri"], run_id, STATUS_FAILED, "RuntimeError: boom at D=8", run_status="FAILED"
    )
    MlflowFinaliser(ctx).on_trial_error(0, [], _tune_trial("t1"))  # Tune has nothing better to say
    run = _child(ctx)
    assert (
        run.data.tags["status"] == STATUS_FAILED
        and run.data.tags["status_reason"] == "RuntimeError: boom at D=8"
    )


def test_a_trial_whose_worker_died_gets_the_error_tune_recorded(store: dict[str, str]) -> None:
    from ray.exceptions import RayActorError, RayTaskError

    ctx = _ctx(store["uri"], "dead-worker")
    tracking.start_child(ctx.tracking, "t1", {}, point_key=point_key(POINT))  # left running: the worker died
    MlflowFinaliser(ctx).on_trial_error(0, [], _tune_trial("t1", RayActorError()))
    run = _child(ctx)
    assert run.info.status == "FAILED" and run.data.tags["status"] == STATUS_FAILED
    assert run.data.tags["status_reason"].startswith("RayActorError: The actor")
    # the other forms Tune keeps: a task error around the trial's exception, or only the text
    wrapped = RayTaskError("train", "Traceback ...", RuntimeError("boom at D=8"))
    assert trial_error(_tune_trial("t2", wrapped)) == "RuntimeError: boom at D=8"
    assert (
        trial_error(_tune_trial("t3", None, "Failure # 1\nTraceback\nValueError: bad\n")) == "ValueError: bad"
    )


def test_finish_child_takes_exactly_the_schema_statuses(store: dict[str, str]) -> None:
    ctx = _ctx(store["uri"], "statuses")
    run_id = tracking.start_child(ctx.tracking, "t1", {})
    with pytest.raises(ValueError, match="status must be one of"):
        tracking.finish_child(store["uri"], run_id, "stopped")
    for status in STATUSES:
        tracking.finish_child(store["uri"], run_id, status)
    assert STATUS_FAILED in STATUSES


# --------------------------------------------------------------------------------------------
# Finding 4: several processes opening one new sqlite store at once
# --------------------------------------------------------------------------------------------
def _open_store(uri: str, barrier, errors) -> None:
    barrier.wait()
    try:
        tracking.ensure_experiment(uri, "relgrad")
    except Exception as exc:  # reported to the parent
        errors.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.slow
def test_concurrent_first_use_of_a_new_sqlite_store(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/fresh/mlflow.db"
    (tmp_path / "fresh").mkdir()
    context = multiprocessing.get_context("spawn")
    barrier, errors = context.Barrier(3), context.Queue()
    procs = [context.Process(target=_open_store, args=(uri, barrier, errors)) for _ in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=240)
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert not found, found
    assert all(proc.exitcode == 0 for proc in procs)
