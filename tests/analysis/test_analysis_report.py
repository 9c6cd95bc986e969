"""End to end: a report from the fake store has every section, figure and table; it is
self-contained, reruns overwrite it, and it lands as artifacts of the parent runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from analysis import Report, build_report
from tests.analysis.conftest import DIMS, PEAK_GFLOPS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SECTIONS = (
    "Headline",
    "Overview",
    "Trials",
    "Runtime scaling",
    "Counted work and achieved rate",
    "Predictions",
    "Timing quality",
    "Speedup and crossover",
    "Overhead over the MLP floor",
    "Peak memory",
    "Learning: likelihood at convergence and against wall-clock",
    "Hyper-parameter search",
)
FIGURES = (
    "runtime_vs_dim",
    "achieved_rate",
    "speedup_vs_dim",
    "overhead_vs_mlp",
    "memory_vs_dim",
    "kl_at_convergence_vs_dim",
    "kl_gap_vs_time",
    "hpo_ll_vs_budget",
    "hpo_importances",
)
TABLES = (
    "trials",
    "status_counts",
    "problem_trials",
    "exponents_runtime",
    "verdicts_runtime",
    "cost_model_runtime",
    "d3_share_runtime",
    "counted_work",
    "achieved_rate",
    "predictions",
    "crossover_predicted",
    "predicted_vs_measured",
    "flagged_timings",
    "speedup",
    "crossover",
    "overhead_mlp",
    "exponents_memory",
    "verdicts_memory",
    "cost_model_memory",
    "d3_share_memory",
    "learning_trials",
    "kl_at_convergence",
    "paired_difference",
    "time_to_target",
    "first_to_target",
    "hpo_trials",
    "hpo_outcome",
    "hpo_importances",
)


@pytest.fixture(scope="module")
def report(fake_store: Any, tmp_path_factory: pytest.TempPathFactory) -> Report:
    out = tmp_path_factory.mktemp("report") / "out"
    return build_report(
        [fake_store.scaling, fake_store.hpo], tracking_uri=fake_store.tracking_uri, out_dir=out
    )


def test_every_section_figure_and_table(report: Report) -> None:
    html = report.html.read_text(encoding="utf-8")
    md = report.markdown.read_text(encoding="utf-8")
    for title in SECTIONS:
        assert re.search(rf'<h2 id="s\d+-[a-z0-9-]+">{re.escape(title)}</h2>', html), title
        assert f"## {title}\n" in md
    for name in FIGURES:
        png, svg = report.out_dir / "figures" / f"{name}.png", report.out_dir / "figures" / f"{name}.svg"
        assert png.read_bytes()[:8] == PNG_MAGIC
        assert svg.read_text(encoding="utf-8").lstrip().startswith(("<?xml", "<svg"))
        assert f"figures/{name}.png" in md
    assert set(report.tables) == set(TABLES)
    for path in report.tables.values():
        assert path.suffix == ".csv" and path.exists()


def test_html_is_self_contained(report: Report) -> None:
    html = report.html.read_text(encoding="utf-8")
    sources = re.findall(r'src="([^"]*)"', html)
    assert len(sources) == len(FIGURES)  # the main figure once, under the headline
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    # the only links: the table of contents and the CSV files of long tables, next to the report
    links = re.findall(r'href="([^"]*)"', html)
    assert all(re.fullmatch(r"#s\d+-[a-z0-9-]+|tables/\w+\.csv", link) for link in links), links
    assert "<table" in html


def test_findings_match_the_fake_power_laws(report: Report) -> None:
    verdicts = pd.read_csv(report.tables["verdicts_runtime"]).set_index("method")
    # counted and timed orders agree on the fake store: the headline order is both
    assert (verdicts["order"] == verdicts["order_counted"]).all()
    assert (verdicts["order"] == verdicts["order_timed"]).all()
    assert verdicts["order_note"].isna().all()
    for method in ("relative", "lu", "mlp"):
        assert verdicts.loc[method, "order"] == "quadratic"
        assert verdicts.loc[method, "slope_low"] <= 2.0 <= verdicts.loc[method, "slope_high"]
    for method in ("ordinary", "autodiff", "jacobian"):
        assert verdicts.loc[method, "order"] == "cubic"
        assert verdicts.loc[method, "c_low"] > 0
    cost = pd.read_csv(report.tables["cost_model_runtime"]).set_index("method")
    # fitted on sec_per_iter_min = 0.9 × the median in the fake store: ordinary's c ≈ 0.9 · 4e-11
    assert cost.loc["ordinary", "c_low"] <= 0.9 * 4e-11 <= cost.loc["ordinary", "c_high"]
    assert (cost["statistic"] == "sec_per_iter_min").all()
    assert cost.loc["relative", "c"] == pytest.approx(0.0, abs=1e-13)
    assert cost.loc["jacobian", "half_dim"] < 64 < cost.loc["relative", "half_dim"]
    lines = report.headline
    # the fake fits converged: their quality is read first, one line per D, then the orders
    assert lines[1].startswith("D = 64: KL gap at convergence relative")
    orders = lines[1 + len(DIMS) :]
    assert orders[0].startswith("relative: quadratic (no D³ work in the count); timed quadratic — ")
    assert orders[1].startswith("ordinary: cubic (D³ work ") and "; timed cubic — c = " in orders[1]
    peak = next(line for line in lines if "matrix-multiply peak" in line)
    rates = pd.read_csv(report.tables["achieved_rate"])
    top = rates[(rates["method"] == "relative") & (rates["dim"] == 1024)].iloc[0]
    assert top["pct_of_peak"] == pytest.approx(100 * top["gflops"] / PEAK_GFLOPS)
    assert peak.startswith("relative reaches ") and f"{top['pct_of_peak']:.0f}% of the measured" in peak
    assert "(500 GFLOP/s, a 2048² GEMM)" in peak
    assert any(line.startswith("relative vs ordinary: ×") and "at D = 23552" in line for line in lines)
    predicted = pd.read_csv(report.tables["predictions"])
    assert set(predicted["dim"]) == {4096, 23552}  # default: largest D × 4 and the paper's largest
    cross = pd.read_csv(report.tables["crossover"]).set_index("baseline")
    # fake laws: ordinary = relative at D ≈ 100 (noise moves it a little)
    assert 64 < cross.loc["ordinary", "crossover_dim"] < 256
    assert cross.loc["mlp", "crossover"].startswith("never")
    overhead = pd.read_csv(report.tables["overhead_mlp"])
    assert overhead["flop_floor"].tolist() == pytest.approx([1.2] * len(overhead))  # logged by the runs
    assert overhead["pct_of_peak"].tolist() == pytest.approx(
        list(100 * overhead["gflops_reference"] / PEAK_GFLOPS)
    )
    counted = pd.read_csv(report.tables["counted_work"]).set_index("method")
    assert counted.loc["jacobian", "order_counted"] == "cubic" and counted.loc["mlp", "c3"] == 0
    md = report.markdown.read_text(encoding="utf-8")
    assert md.index("## Headline") < md.index("## Overview") < md.index("## Runtime scaling")
    # the range of the secondary slope is stated beside it
    assert "D 256–1024" in set(pd.read_csv(report.tables["exponents_runtime"])["slope_range"])
    assert "Fake Xeon 9000" in md


def test_problem_trials_listed_with_reasons(report: Report) -> None:
    problems = pd.read_csv(report.tables["problem_trials"])
    assert sorted(problems["status"]) == ["diverged", "failed", "skipped_over_budget", "skipped_over_budget"]
    md = report.markdown.read_text(encoding="utf-8")
    for reason in ("estimated 812 s > budget 60 s", "non-finite loss at step 3", "CUDA out of memory"):
        assert reason in md
    assert "autodiff" in str(report) and "skipped_over_budget" in str(report)


def test_artifacts_logged_on_parent_runs(report: Report, fake_store: Any) -> None:
    assert set(report.logged_to_runs) == {fake_store.scaling_parent, fake_store.hpo_parent}
    client = MlflowClient(tracking_uri=fake_store.tracking_uri)
    names = {a.path for a in client.list_artifacts(fake_store.scaling_parent, "report")}
    assert {"report/report.html", "report/report.md", "report/figures", "report/tables"} <= names
    figures = {a.path for a in client.list_artifacts(fake_store.scaling_parent, "report/figures")}
    assert "report/figures/runtime_vs_dim.png" in figures


def test_rerun_overwrites_and_removes_stale_files(fake_store: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = build_report(
        fake_store.scaling, tracking_uri=fake_store.tracking_uri, out_dir=out, log_to_mlflow=False
    )
    assert (out / "figures" / "runtime_vs_dim.png").exists()
    (out / "figures" / "leftover.png").write_bytes(b"stale")
    other = out / "notes.txt"
    other.write_text("not ours")
    second = build_report(
        fake_store.hpo, tracking_uri=fake_store.tracking_uri, out_dir=out, log_to_mlflow=False
    )
    assert second.html == first.html and second.logged_to_runs == []
    assert not (out / "figures" / "leftover.png").exists()
    assert not (out / "figures" / "runtime_vs_dim.png").exists()  # no timings in an HPO sweep
    assert {p.stem for p in (out / "figures").iterdir()} == {"hpo_ll_vs_budget", "hpo_importances"}
    assert other.read_text() == "not ours"  # files the report does not own are left alone
    md = second.markdown.read_text(encoding="utf-8")
    # an HPO report has no scaling sections at all, not even empty ones
    assert "## Runtime scaling" not in md and "## Learning" not in md and "fake-scaling" not in md
    assert "## Hyper-parameter search" in md


def _printed_tables(html: str) -> list[str]:
    return re.findall(r"<table.*?</table>", html, flags=re.S)


def test_no_printed_table_is_wider_than_10_columns_or_longer_than_12_rows(report: Report) -> None:
    html = report.html.read_text(encoding="utf-8")
    tables = _printed_tables(html)
    assert len(tables) > 10
    for table in tables:
        head, body = table.split("</thead>")
        assert head.count("<th") <= 10 and body.count("<tr") <= 12
    # a long table is a linked CSV: every search trial (8 rows × 12 columns) is one
    assert 'href="tables/hpo_trials.csv"' in html and "8 rows × 12 columns" in html
    # D down the side and methods across, constants in the caption
    md = report.markdown.read_text(encoding="utf-8")
    assert "| D | relative | ordinary | autodiff | jacobian | lu | mlp |" in md
    assert "sweep fake-scaling, device cpu: Fake Xeon 9000, depth 2, batch 100" in md
    assert "| method | order (counted) | order (timed) | t0 (s) | a (s/D²) | c (s/D³) |" in md


def test_a_scaling_report_has_no_search_section(fake_store: Any, tmp_path: Path) -> None:
    report = build_report(
        fake_store.scaling, tracking_uri=fake_store.tracking_uri, out_dir=tmp_path, log_to_mlflow=False
    )
    md = report.markdown.read_text(encoding="utf-8")
    assert "Hyper-parameter search" not in md and "## Learning" in md


def test_budget_cut_fits_do_not_compare_quality(store_builder: Any, tmp_path: Path) -> None:
    """The demo's case: fits cut by their time budget while still improving; the learning section says so
    in its first line, shows one small table and no LL panel; mlp is footnoted."""
    store = store_builder(tmp_path / "store", hpo=False)
    client = MlflowClient(tracking_uri=store.tracking_uri)
    for run in client.search_runs([client.get_experiment_by_name("relgrad").experiment_id]):
        if run.data.tags.get("role") == "trial" and run.data.tags.get("status") == "ok":
            client.set_tag(run.info.run_id, "stopped_reason", "time_budget (still improving)")
    report = build_report(store.scaling, tracking_uri=store.tracking_uri, out_dir=tmp_path / "out")
    md = report.markdown.read_text(encoding="utf-8")
    learning = md[md.index("## Learning") :]
    first = learning.splitlines()[2]
    assert first.startswith("Quality cannot be compared in this sweep:") and "still improving" in first
    assert learning.count("| method |") == 1 and "![" not in learning
    assert "'mlp' is left out of every likelihood comparison" in learning
    assert not (tmp_path / "out" / "figures" / "kl_gap_vs_time.png").exists()
    assert any(line.startswith("learning: quality not compared") for line in report.headline)


def test_verdict_on_the_parent_run(report: Report, fake_store: Any) -> None:
    """Each method's order as a tag, c / D³ share / predicted speedups as metrics, as the tables say."""
    client = MlflowClient(tracking_uri=fake_store.tracking_uri)
    parent = client.get_run(fake_store.scaling_parent)
    orders = pd.read_csv(report.out_dir / "tables" / "verdicts_runtime.csv")
    for row in orders.itertuples():
        assert parent.data.tags[f"order_{row.method}"] == row.order
        if pd.notna(row.c):
            assert parent.data.metrics[f"c/{row.method}"] == pytest.approx(row.c)
            assert parent.data.metrics[f"d3_share/{row.method}"] == pytest.approx(row.d3_share_at_max)
    assert parent.data.tags["order_ordinary"] == "cubic" and parent.data.tags["order_relative"] == "quadratic"
    assert parent.data.metrics["c_low/ordinary"] <= parent.data.metrics["c/ordinary"]
    assert parent.data.metrics["c/ordinary"] <= parent.data.metrics["c_high/ordinary"]
    # the runs can be searched by their verdict
    found = client.search_runs(
        [parent.info.experiment_id], filter_string="tags.order_ordinary = 'cubic' and tags.role = 'parent'"
    )
    assert [r.info.run_id for r in found] == [fake_store.scaling_parent]
    predictions = pd.read_csv(report.out_dir / "tables" / "predictions.csv")
    mine = predictions[predictions["sweep"] == fake_store.scaling]
    ordinary = mine[mine["method"] == "ordinary"]
    history = client.get_metric_history(fake_store.scaling_parent, "speedup/ordinary")
    assert {m.step: m.value for m in history} == pytest.approx(
        dict(zip(ordinary["dim"], ordinary["speedup_of_reference"], strict=True))
    )
    assert "order_relative" not in client.get_run(fake_store.hpo_parent).data.tags  # no timings there


def test_verdict_logging_is_idempotent_and_takes_the_counted_orders(tmp_path: Path) -> None:
    from analysis.loading import SweepInfo
    from analysis.verdict_tracking import log_verdicts, verdict_tags

    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    client = MlflowClient(tracking_uri=uri)
    run_id = client.create_run(client.create_experiment("relgrad"), tags={"sweep": "s"}).info.run_id
    orders = pd.DataFrame(
        {
            "sweep": ["s", "s"],
            "device_name": ["cpu", "gpu"],
            "method": ["ordinary"] * 2,
            "order": ["cubic", "quadratic"],
            "order_counted": ["cubic", "quadratic"],  # the columns of issue 15's counted-work orders
            "order_timed": ["quadratic", "quadratic"],
            "depth": [2, 2],
            "batch_size": [64, 64],
            "max_dim": [1024, 512],
            "c": [2.0, 1.0],
        }
    )
    # several devices: the one whose curve reached the largest D speaks for the method
    assert verdict_tags(orders, "s") == {
        "order_ordinary": "cubic",
        "order_counted_ordinary": "cubic",
        "order_timed_ordinary": "quadratic",
    }
    predictions = pd.DataFrame(
        {
            "sweep": ["s"] * 2,
            "device_name": ["cpu"] * 2,
            "depth": [2, 2],
            "batch_size": [64, 64],
            "method": ["ordinary"] * 2,
            "dim": [4096, 23552],
            "speedup_of_reference": [3.0, 9.0],
            "speedup_low": [2.0, 5.0],
            "speedup_high": [4.0, float("nan")],
        }
    )
    sweeps = [SweepInfo("s", "scaling", run_id)]
    for _ in range(2):  # a report built again logs no point twice
        assert log_verdicts(uri, sweeps, orders, predictions) == []
    run = client.get_run(run_id)
    assert run.data.tags["order_timed_ordinary"] == "quadratic"
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "c/ordinary")] == [(0, 2.0)]
    speedups = client.get_metric_history(run_id, "speedup/ordinary")
    assert sorted((m.step, m.value) for m in speedups) == [(4096, 3.0), (23552, 9.0)]
    assert [m.step for m in client.get_metric_history(run_id, "speedup_high/ordinary")] == [4096]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_dim": 0}, "min_dim must be a positive integer, got 0 (or None)"),
        ({"min_dim": True}, "min_dim must be a positive integer, got True (or None)"),
        ({"n_boot": 99}, "n_boot must be an integer >= 100, got 99"),
        ({"n_boot": 200.0}, "n_boot must be an integer >= 100, got 200.0"),
        ({"tolerance": -0.5}, "tolerance must be a non-negative number of nats, got -0.5"),
        ({"tolerance": float("nan")}, "tolerance must be a non-negative number of nats, got nan"),
        ({"predict_dims": [8, 0]}, "predict_dims[1] must be a positive integer, got 0"),
        ({"predict_dims": []}, "predict_dims is empty"),
    ],
)
def test_bad_arguments_are_refused_before_any_run_is_read(
    tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    from analysis import ReportError

    store = tmp_path / "none.db"  # no store: the arguments are checked before it is opened
    with pytest.raises(ReportError, match=re.escape(message)):
        build_report("s", tracking_uri=f"sqlite:///{store}", out_dir=tmp_path / "out", **kwargs)
    assert not store.exists() and not (tmp_path / "out").exists()


def test_the_fits_check_their_bootstrap_with_the_same_rule() -> None:
    from analysis import ReportError, fit_cost_model, fit_exponent

    dims, values = [64, 128, 256, 512], [1.0, 2.0, 4.0, 8.0]
    for fit in (fit_cost_model, fit_exponent):
        with pytest.raises(ReportError, match=r"n_boot must be an integer >= 100, got 10$"):
            fit(dims, values, n_boot=10)
        with pytest.raises(ReportError, match=r"level must lie in \(0, 1\), got 1\.0$"):
            fit(dims, values, level=1.0)
        with pytest.raises(ReportError, match=r"dims and values must be positive to fit an? "):
            fit(dims, [1.0, -2.0, 4.0, 8.0])
