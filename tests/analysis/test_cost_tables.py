"""Cost-model tables on run tables: disturbed timings flagged without flipping the order, the
per-method order, predictions against measurements, and bad input turned into `not fitted` rows or
clear errors (down to a whole report with a single or an unregistered method)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from analysis import ReportError, build_report, cost_table, fit_groups, flag_disturbed, method_orders
from analysis.figures import method_colour
from analysis.predictions import holdout_table, prediction_table

DIMS = (128, 256, 512, 1024, 2048, 4096)
LAWS: dict[str, Callable[[float], float]] = {
    # shaped like the 2-core CPU of BENCHMARKS.md at B = 64 (seconds per step)
    "relative": lambda d: 1.5e-3 + 6e-9 * d**2,
    "ordinary": lambda d: 2e-3 + 8e-9 * d**2 + 2e-11 * d**3,
}


def _runs(noise: float = 0.03, seed: int = 0, dims: tuple[int, ...] = DIMS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for method, law in LAWS.items():
        for d in dims:
            t = law(d) * float(np.exp(rng.normal(0.0, noise)))
            rows.append(
                {
                    "run_id": f"{method}-{d}",
                    "sweep": "s",
                    "device_name": "cpu",
                    "method": method,
                    "depth": 2,
                    "batch_size": 64,
                    "dim": d,
                    "status": "ok",
                    "sec_per_iter": 1.05 * t,
                    "sec_per_iter_min": t,
                    "sec_per_iter_iqr": 0.04 * t,
                    "load_avg_1m": 0.3,
                    "timing_retimed": 0.0,
                }
            )
    return pd.DataFrame(rows).astype({"dim": "Int64", "depth": "Int64", "batch_size": "Int64"})


def _orders(runs: pd.DataFrame) -> tuple[dict[str, str], pd.DataFrame, list[Any]]:
    groups = fit_groups(runs, n_boot=300)
    flagged = flag_disturbed(groups, runs)
    table = cost_table(groups, n_boot=300, seed=0)
    return dict(zip(table["method"], table["order"], strict=True)), flagged, [table, groups]


def test_clean_timings_give_the_paper_orders_and_nothing_flagged() -> None:
    orders, flagged, (table, _) = _orders(_runs())
    assert orders == {"relative": "quadratic", "ordinary": "cubic"}
    assert flagged.empty and (table["statistic"] == "sec_per_iter_min").all()
    row = table.set_index("method").loc["ordinary"]
    assert row["c_low"] <= 2e-11 <= row["c_high"]
    assert row["half_dim_low"] <= row["half_dim"] <= row["half_dim_high"]


def test_slowed_and_noisy_points_are_flagged_and_do_not_flip_the_order() -> None:
    runs = _runs()
    slowed = runs["run_id"] == "relative-256"  # another job ran: every repeat 5× slower
    runs.loc[slowed, ["sec_per_iter", "sec_per_iter_min"]] *= 5.0
    noisy = runs["run_id"] == "ordinary-1024"  # repeats all over the place
    runs.loc[noisy, "sec_per_iter_iqr"] = 0.6 * runs.loc[noisy, "sec_per_iter"]
    runs.loc[noisy, "load_avg_1m"] = 3.1
    orders, flagged, (table, _) = _orders(runs)
    assert orders == {"relative": "quadratic", "ordinary": "cubic"}
    reasons = dict(zip(flagged["run_id"], flagged["reason"], strict=True))
    assert set(reasons) == {"relative-256", "ordinary-1024"}
    assert reasons["relative-256"].startswith("non-monotone")
    assert reasons["ordinary-1024"].startswith("spread IQR/median = 0.60 > 0.25")
    assert flagged.set_index("run_id").loc["ordinary-1024", "load_avg_1m"] == 3.1
    by_method = table.set_index("method")
    assert (by_method["n_flagged"] == 1).all()
    assert (by_method["order_without_flagged"] == by_method["order"]).all()


def test_fallback_to_the_median_is_named() -> None:
    runs = _runs().drop(columns=["sec_per_iter_min"])
    table = cost_table(fit_groups(runs, n_boot=200), n_boot=200, seed=0)
    assert (table["statistic"] == "sec_per_iter").all()
    assert list(table["order"]) == ["cubic", "quadratic"]  # groups sort by method name


def test_bad_curves_become_not_fitted_rows_with_their_reason() -> None:
    runs = _runs()
    two_dims = runs[~((runs["method"] == "ordinary") & (runs["dim"] > 256))]
    all_nan = runs.assign(
        sec_per_iter_min=np.nan, sec_per_iter=np.where(runs["method"] == "ordinary", np.nan, 1.0)
    )
    for frame, method, reason in (
        (two_dims, "ordinary", "at least 4 distinct D"),
        (all_nan, "ordinary", "all missing or NaN"),
    ):
        table = cost_table(fit_groups(frame, n_boot=200), n_boot=200, seed=0).set_index("method")
        assert table.loc[method, "order"] == "not fitted"
        assert reason in table.loc[method, "reason"]
        verdicts = method_orders(table.reset_index()).set_index("method")
        assert verdicts.loc[method, "order"] == "not fitted" and reason in verdicts.loc[method, "reason"]


def test_prediction_matches_a_held_out_measurement() -> None:
    runs = _runs(noise=0.01)
    groups = fit_groups(runs, n_boot=300)
    pred = prediction_table(groups, [4096, 8192], "relative")
    ordinary = pred[(pred["method"] == "ordinary")].set_index("dim")
    assert bool(ordinary.loc[4096, "measured"]) and not bool(ordinary.loc[8192, "measured"])
    truth = LAWS["ordinary"](8192) / LAWS["relative"](8192)
    assert ordinary.loc[8192, "speedup_low"] <= truth <= ordinary.loc[8192, "speedup_high"]
    held = holdout_table(groups, [4096], n_boot=300, seed=0).set_index("method")
    for method in LAWS:  # fitted on D ≤ 2048, compared with the measurement at 4096
        assert held.loc[method, "fitted_on"] == "D 128–2048"
        assert held.loc[method, "measured_over_pred"] == pytest.approx(1.0, abs=0.1)


def test_single_method_and_unregistered_method_reports(store_builder: Any, tmp_path: Path) -> None:
    store = store_builder(tmp_path / "one", hpo=False, methods=("relative",))
    report = build_report(
        store.scaling, tracking_uri=store.tracking_uri, out_dir=tmp_path / "r1", log_to_mlflow=False
    )
    assert any(line.startswith("relative: quadratic") for line in report.headline)
    assert not any(" vs " in line for line in report.headline)
    assert "Needs timings of 'relative' and at least one other method" in report.markdown.read_text()
    custom = store_builder(tmp_path / "two", hpo=False, methods=("relative", "newton", "ordinary"))
    report = build_report(
        custom.scaling, tracking_uri=custom.tracking_uri, out_dir=tmp_path / "r2", log_to_mlflow=False
    )
    verdicts = pd.read_csv(report.tables["verdicts_runtime"])
    assert list(verdicts["method"]) == ["relative", "ordinary", "newton"]  # unknown methods sort after
    assert verdicts.set_index("method").loc["newton", "order"] == "quadratic"
    assert any(line.startswith("relative vs newton: ×") for line in report.headline)
    assert method_colour("newton") == method_colour("another-one") != method_colour("relative")


def test_bad_report_arguments(fake_store: Any, tmp_path: Path) -> None:
    for bad in ([0], [], [1.5], [True]):
        with pytest.raises(ReportError, match="predict_dims"):
            build_report(
                fake_store.scaling, tracking_uri=fake_store.tracking_uri, out_dir=tmp_path, predict_dims=bad
            )


def _cross_frames(d: float, low: float, high: float):
    import pandas as pd

    key = {"sweep": "s", "depth": 2, "batch_size": 64, "baseline": "mlp"}
    measured = pd.DataFrame([{**key, "crossover_dim": float("nan"), "crossover": "none in range"}])
    predicted = pd.DataFrame(
        [{**key, "crossover_pred_dim": d, "crossover_pred_low": low, "crossover_pred_high": high}]
    )
    return measured, predicted, ("s", 2, 64, "mlp")


def test_crossover_text_never_states_a_crossover_the_models_cannot_place() -> None:
    from analysis.cost_sections import crossing_text

    assert (
        crossing_text(*_cross_frames(3000.0, 2000.0, 5000.0))
        == "predicted crossover at D ≈ 3000 [2000, 5000]"
    )
    assert "baseline stays cheaper" in crossing_text(*_cross_frames(float("inf"), 100.0, float("inf")))
    # equal costs within uncertainty (the demo's relative vs mlp): no "crossover at D ≈ 0 [0, ∞]"
    overlap = crossing_text(*_cross_frames(0.0, 0.0, float("inf")))
    assert overlap.startswith("no crossover determined") and "≈ 0" not in overlap
    assert crossing_text(*_cross_frames(0.0, 0.0, 40.0)).startswith("faster at every D by the fitted models")


def test_flag_line_tells_a_flip_from_a_curve_left_unorderable() -> None:
    import pandas as pd

    from analysis.cost_sections import flag_effects

    table = pd.DataFrame(
        [
            {
                "method": "lu",
                "n_flagged": 3,
                "order": "quadratic",
                "order_without_flagged": "not fitted (3 D)",
            },
            {"method": "mlp", "n_flagged": 1, "order": "quadratic", "order_without_flagged": "cubic"},
            {
                "method": "relative",
                "n_flagged": 1,
                "order": "quadratic",
                "order_without_flagged": "quadratic",
            },
        ]
    )
    assert flag_effects(table) == (["mlp"], ["lu"])
