"""The tracking contract: what `study` writes is what `analysis` reads, name for name.

One tiny trial runs through `study.trial.run_logged` (no Ray) into a temporary sqlite store, a second
is recorded interrupted, and `analysis.loading.load_runs` reads them back: every status, tag, param and
metric name of `analysis.schema` must round-trip, and the writer must spell none of them itself.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from analysis import schema
from analysis.loading import load_runs
from study.config import DataConfig, TrainConfig
from study.sweep import prepare_tracking
from study.trial import SweepContext, run_logged

REPO = Path(__file__).resolve().parents[1]
POINT = {"method": "relative", "dim": 3, "depth": 2, "batch_size": 8, "lr": 1e-3, "alpha": 0.3, "seed": 0}
#: A small scaling trial on teacher data writes every metric (load_avg_1m is NaN only where the OS has none).
WRITTEN = schema.METRICS


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('schema')}/mlflow.db"
    tctx = prepare_tracking(uri, "relgrad", "schema", "scaling", {"methods": "relative"}, resume=False)
    data = DataConfig(dataset="teacher", n_train=64, n_val=16, n_test=16, teacher_depth=1)
    train = TrainConfig(epochs=2, steps_per_epoch=3, timing_warmup=1, timing_repeats=3, device="cpu")
    ctx = SweepContext(tracking=tctx, data=data, train=train, dedupe_points=True)
    outcome = run_logged(POINT, ctx, "trial-ok")

    def stop(result: dict) -> None:
        raise SystemExit(0)  # Tune stopping a trial while the sweep shuts down

    with pytest.raises(SystemExit):
        run_logged({**POINT, "dim": 4}, ctx, "trial-cut", report=stop)
    return uri, outcome, load_runs("schema", tracking_uri=uri)


def test_every_metric_round_trips(written) -> None:
    uri, outcome, runs = written
    ok = runs[runs["status"] == schema.STATUS_OK]
    assert len(ok) == 1
    row = ok.iloc[0]
    for name in WRITTEN:
        if name == "load_avg_1m" and math.isnan(outcome.metrics.get(name, math.nan)):
            continue
        assert name in runs.columns, name
        assert math.isfinite(row[name]), (name, row[name])
        if name in outcome.metrics:
            assert row[name] == pytest.approx(outcome.metrics[name]), name
    assert outcome.steps > 0
    client = MlflowClient(tracking_uri=uri)
    for name in schema.FINAL_METRICS:  # logged once, at the last training step
        if name in outcome.metrics:
            assert [m.step for m in client.get_metric_history(row["run_id"], name)] == [outcome.steps], name
    assert row["flop_ratio"] == pytest.approx(1.2)  # relative at depth 2, Gaussian base
    assert row["timing_repeats"] >= 3 and row["timing_retimed"] in (0.0, 1.0)


def _eigh_direction(flow, x):
    """The MLP's direction plus an eigendecomposition the FLOP counter cannot count."""
    import torch

    from relgrad_core.gradients import data_term_direction

    loss = data_term_direction(flow, x)
    with torch.no_grad():
        for layer in flow.layers:
            layer.weight.grad.add_(torch.linalg.eigh(layer.weight.mT @ layer.weight).eigenvectors, alpha=0.0)
    return loss


def test_uncounted_work_is_tagged_and_read_back(written, tmp_path: Path) -> None:
    from relgrad_core import DenseFlow, FlopModel, MethodSpec, register_method, unregister_method

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tctx = prepare_tracking(uri, "relgrad", "eigh", "scaling", {"methods": "eigh"}, resume=False)
    data = DataConfig(dataset="teacher", n_train=32, n_val=16, n_test=16, teacher_depth=1)
    train = TrainConfig(epochs=1, steps_per_epoch=2, timing_warmup=0, timing_repeats=1, device="cpu")
    register_method(MethodSpec("eigh", DenseFlow, _eigh_direction, FlopModel(lambda depth, gaussian: 0.0)))
    try:
        run_logged({**POINT, "method": "eigh"}, SweepContext(tracking=tctx, data=data, train=train), "t")
    finally:
        unregister_method("eigh")
    row = load_runs("eigh", tracking_uri=uri).iloc[0]
    assert row[schema.TAG_UNCOUNTED_OPS] == "aten._linalg_eigh"
    _, _, runs = written  # a built-in method's runs carry no such tag: the column is empty
    assert set(runs[schema.TAG_UNCOUNTED_OPS]) == {""}


def test_params_tags_and_statuses_round_trip(written) -> None:
    _, _, runs = written
    assert set(runs["status"]) == {schema.STATUS_OK, schema.STATUS_INTERRUPTED}
    assert set(runs["status"]) <= set(schema.STATUSES)
    row = runs[runs["status"] == schema.STATUS_OK].iloc[0]
    for name in (*schema.INT_PARAMS, *schema.FLOAT_PARAMS):
        assert float(row[name]) == pytest.approx(float(POINT.get(name, 0))), name
    assert (row["method"], row["dataset"], row["device"], row["dtype"]) == (
        "relative",
        "teacher",
        "cpu",
        "float32",
    )
    for name in schema.TAG_COLUMNS:
        if name != schema.TAG_GAUSSIAN_ABSENT:
            assert row[name] != "", name
    assert row[schema.TAG_GAUSSIAN_ABSENT] == "" and math.isfinite(row["gaussian_test_ll"])  # it was fitted
    assert row["sweep"] == "schema" and row["parent_run_id"]
    cut = runs[runs["status"] == schema.STATUS_INTERRUPTED].iloc[0]
    assert "interrupted" in cut["status_reason"] and math.isnan(cut["test_ll"])


#: The names the guard below looks for: every status, tag, role and run kind of the schema, and the default
#: experiment. Not among them: metric and param names (data-frame columns read everywhere, tied by the
#: round-trip tests above), curve quantities (metric names too), method names (registry names) and
#: ``KIND_TRAIN``, whose ``"train"`` is also a config section and a data split.
GUARDED: dict[str, str] = {
    value: attr
    for attr, value in vars(schema).items()
    if isinstance(value, str)
    and (attr.startswith(("STATUS_", "TAG_", "ROLE_", "KIND_")) or attr == "DEFAULT_EXPERIMENT")
    and attr != "KIND_TRAIN"
}
#: Where such a word means something else, and why.
NOT_THE_SCHEMAS: dict[tuple[str, str], str] = {
    ("analysis/__init__.py", "scaling"): "the module analysis.scaling, which its names are imported from",
    ("study/kinds.py", "scaling"): "the command `relgrad scaling`, named after its kind",
    ("study/parsing.py", "relgrad"): "the program's name (PROG), which the experiment happens to share",
    ("study/preflight.py", "sweep"): "the name a sweep gets when nothing else names it",
}


def hand_typed_names(path: Path, source: str) -> list[str]:
    """``line: 'name'`` for each string literal in ``source`` equal to a name of :data:`GUARDED`, docstrings
    and the literal text of f-strings aside (an expression inside an f-string is code, and is scanned)."""
    tree = ast.parse(source)
    prose = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            prose.add(id(node.value))  # a docstring, or a bare string statement
        if isinstance(node, ast.JoinedStr):
            prose.update(id(part) for part in node.values if isinstance(part, ast.Constant))
    where = path.relative_to(REPO).as_posix()
    typed = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value in GUARDED
        and id(node) not in prose
        and (where, node.value) not in NOT_THE_SCHEMAS
    ]
    typed.sort(key=lambda node: (node.lineno, node.col_offset))
    return [f"{where}:{node.lineno}: {node.value!r} (schema.{GUARDED[node.value]})" for node in typed]


def _modules() -> list[Path]:
    return [
        path
        for package in ("study", "analysis")
        for path in sorted((REPO / package).rglob("*.py"))
        if path != REPO / "analysis" / "schema.py"
    ]


def test_no_module_of_study_or_analysis_types_a_schema_name_by_hand() -> None:
    assert len(_modules()) > 40  # every module of both packages, not a chosen few
    found = [line for path in _modules() for line in hand_typed_names(path, path.read_text())]
    assert found == [], "take these from analysis.schema:\n" + "\n".join(found)


def test_the_guard_finds_a_name_typed_by_hand() -> None:
    path = REPO / "study" / "example.py"
    source = (
        "from analysis.schema import TAG_SWEEP\n"
        '"""docstring: status ok, role trial."""\n'
        "def f(run, d):\n"
        '    text = f"status {d[TAG_SWEEP]}"\n'
        '    return run.data.tags.get("role") == "ok" or d[f"{\'kind\'}"] == "hpo"\n'
    )
    found = hand_typed_names(path, source)
    assert [line.split(": ", 1)[1] for line in found] == [
        "'role' (schema.TAG_ROLE)",
        "'ok' (schema.STATUS_OK)",
        "'kind' (schema.TAG_KIND)",
        "'hpo' (schema.KIND_HPO)",
    ]
    assert {"mlflow.parentRunId", "device_name", "relgrad", "scaling", "status"} <= set(GUARDED)


def test_digits_trial_logs_its_reported_space(tmp_path: Path) -> None:
    """A standardised set: test LL and yardstick on the tensors, reported LL shifted by the set's offset."""
    from relgrad_core import load_dataset

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tctx = prepare_tracking(uri, "relgrad", "digits", "train", {"methods": "relative"}, resume=False)
    train = TrainConfig(epochs=1, steps_per_epoch=2, device="cpu")
    ctx = SweepContext(tracking=tctx, data=DataConfig(dataset="digits"), train=train)
    outcome = run_logged({**POINT, "dim": 64, "batch_size": 32}, ctx, "train")
    offset = load_dataset("digits").ll_offset
    assert offset < -1.0  # −Σ log sd of the logit pixels: far from 0
    m = outcome.metrics
    assert m["ll_offset"] == pytest.approx(offset)
    assert m["reported_test_ll"] == pytest.approx(m["test_ll"] + offset)
    assert m["reported_gaussian_test_ll"] == pytest.approx(m["gaussian_test_ll"] + offset)


def test_stopped_reason_is_tagged_and_its_still_improving_suffix_is_the_cores() -> None:
    from relgrad_core.training import STILL_IMPROVING, STOP_REASONS

    assert schema.STILL_IMPROVING == STILL_IMPROVING
    assert sum(r.endswith(schema.STILL_IMPROVING) for r in STOP_REASONS) == 3  # epochs, max_steps, budget
    assert schema.TAG_STOPPED_REASON in schema.TAG_COLUMNS


def test_the_disturbed_timing_spread_is_the_cores_retime_threshold() -> None:
    from relgrad_core.timing import RETIME_THRESHOLD

    assert schema.DISTURBED_SPREAD == RETIME_THRESHOLD


def test_a_trials_stopped_reason_and_gains_round_trip(written) -> None:
    _, outcome, runs = written
    row = runs[runs["status"] == schema.STATUS_OK].iloc[0]
    assert row[schema.TAG_STOPPED_REASON] == outcome.stopped_reason != ""
    assert row["kl_gap"] == pytest.approx(row["true_test_ll"] - row["test_ll"])
    assert row["gain_over_gaussian"] == pytest.approx(row["test_ll"] - row["gaussian_test_ll"])


def test_a_trial_without_its_gaussian_yardstick_says_why(tmp_path: Path) -> None:
    """6 training rows in 8 dimensions: no Gaussian fit exists, and the run's tag says so."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tctx = prepare_tracking(uri, "relgrad", "few", "scaling", {"methods": "relative"}, resume=False)
    data = DataConfig(dataset="noise", n_train=6, n_val=4, n_test=4)
    train = TrainConfig(epochs=1, steps_per_epoch=2, timing_warmup=1, timing_repeats=2, device="cpu")
    ctx = SweepContext(tracking=tctx, data=data, train=train, dedupe_points=True)
    outcome = run_logged({**POINT, "dim": 8}, ctx, "trial-few")
    assert outcome.status == schema.STATUS_OK and "gaussian_test_ll" not in outcome.metrics
    (row,) = load_runs("few", tracking_uri=uri).to_dict("records")
    assert math.isnan(row["gaussian_test_ll"])
    assert row[schema.TAG_GAUSSIAN_ABSENT] == (
        "cannot be fitted: noise: a full-covariance Gaussian in 8 dimensions needs more than 8 "
        "training rows, got 6"
    )
