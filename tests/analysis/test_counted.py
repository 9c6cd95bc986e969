"""The order from counted work: the exact cubic in D and its tolerance, the counted order beside the timed
one in the verdict table, the headline's words when they disagree, the achieved rate, and the grid's cuts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import cost_sections, predictions
from analysis.counted import COUNT_PRECISION, HIDDEN_D3, REGIME_CHANGE, fit_counted, rate_table
from analysis.grid import capped_lines, skipped_lines
from analysis.loading import SweepInfo

B = 64
DIMS = (128, 256, 512, 1024, 2048, 4096)


def relative_flops(d: float) -> float:
    return 12 * B * d * d + 8 * B * d


def ordinary_flops(d: float) -> float:
    return 10 * B * d * d + 2 / 3 * d**3 * 2 + 4 / 3 * d**3 * 2  # products + LU and inverse of two layers


@pytest.mark.parametrize(
    ("count", "order"),
    [
        (relative_flops, "quadratic"),
        (lambda d: 22 * B * d * d, "quadratic"),
        (ordinary_flops, "cubic"),
        (lambda d: 22 * B * d * d + (10 + 8 / 3) * B * d**3, "cubic"),
    ],
)
def test_four_dims_determine_the_order_exactly(count: Callable[[float], float], order: str) -> None:
    for dims in ((8, 16, 32, 64), DIMS, (1000, 1001, 1002, 1003, 1004)):
        fit = fit_counted(dims, [count(d) for d in dims])
        assert fit.order == order, (dims, fit)
        assert fit.confirmed_at == tuple(float(d) for d in dims if d not in fit.nodes)
    fit = fit_counted(DIMS, [count(d) for d in DIMS])
    assert (fit.coef[3] > 0) == (order == "cubic") and fit.d3_share == pytest.approx(
        fit.coef[3] * 4096**3 / count(4096)
    )


def test_a_tiny_but_real_d3_term_is_cubic_and_float_rounding_is_not() -> None:
    # B = 10⁵ makes the D³ term 0.2% of the count at D = 64: still work that grows as D³
    big = [10 * 100_000 * d * d + 4 * d**3 for d in (8, 16, 32, 64)]
    assert fit_counted((8, 16, 32, 64), big).order == "cubic"
    # the same quadratic count with every value off by a few ulps stays quadratic
    noisy = [relative_flops(d) * (1 + 3e-16 * (-1) ** i) for i, d in enumerate(DIMS)]
    fit = fit_counted(DIMS, noisy)
    assert fit.order == "quadratic" and fit.c3_bound > 0
    # …while an error far beyond the precision a count is taken to have is caught by the confirming D
    wrong = [relative_flops(d) * (1 + 1e3 * COUNT_PRECISION * (d == 512)) for d in DIMS]
    assert fit_counted(DIMS, wrong).order == "not fitted"


def test_what_cannot_be_ordered_says_why() -> None:
    assert "need 4 distinct D" in fit_counted((64, 128, 256), [1.0, 2.0, 3.0]).reason
    assert "need 4 distinct D" in fit_counted([64] * 5, [1.0] * 5).reason
    quartic = fit_counted(DIMS, [float(d) ** 4 for d in DIMS])
    assert quartic.order == "not fitted" and "not a cubic in D" in quartic.reason
    differ = fit_counted((8, 8, 16, 32, 64), [1.0, 2.0, 3.0, 4.0, 5.0])
    assert "differ between runs at D = 8" in differ.reason
    assert fit_counted(DIMS, [-(float(d) ** 3) + 1e12 for d in DIMS]).order == "not fitted"


def _runs(laws: dict[str, tuple[Callable[[float], float], Callable[[float], float] | None]]) -> pd.DataFrame:
    """Synthetic trial rows: per method (seconds law, counted-FLOPs law or None for runs without counts)."""
    rng = np.random.default_rng(0)
    rows = []
    for method, (seconds, flops) in laws.items():
        for d in DIMS:
            t = seconds(d) * float(np.exp(rng.normal(0.0, 0.02)))
            rows.append(
                {
                    "run_id": f"{method}-{d}",
                    "sweep": "s",
                    "device_name": "cpu",
                    "method": method,
                    "depth": 2,
                    "batch_size": B,
                    "dim": d,
                    "status": "ok",
                    "sec_per_iter": 1.02 * t,
                    "sec_per_iter_min": t,
                    "sec_per_iter_iqr": 0.02 * t,
                    "flops_per_step": flops(d) if flops else np.nan,
                    "flops_cubic_per_step": np.nan,
                    "bytes_per_step": 4.0 * 12 * d * d if flops else np.nan,
                }
            )
    return pd.DataFrame(rows).astype({"dim": "Int64", "depth": "Int64", "batch_size": "Int64"})


def _analyse(runs: pd.DataFrame, peaks: dict[str, float] | None = None) -> cost_sections.CostResult:
    return cost_sections.analyse(
        runs, "runtime", predict_dims=None, min_dim=None, n_boot=300, seed=0, peaks=peaks
    )


def test_a_timed_cubic_over_quadratic_work_is_a_hardware_regime_change() -> None:
    # the 2-core grid: relative's step grows faster than D² from the cache transition on
    runs = _runs(
        {
            "relative": (lambda d: 1.5e-3 + 6e-9 * d**2 + 1.7e-12 * d**3, relative_flops),
            "mlp": (lambda d: 1.2e-3 + 5e-9 * d**2, lambda d: 10 * B * d * d),
        }
    )
    res = _analyse(runs, {"s": 120.0})
    verdict = res.orders.set_index("method")
    assert verdict.loc["relative", ["order", "order_counted", "order_timed", "order_note"]].tolist() == [
        "quadratic",
        "quadratic",
        "cubic",
        REGIME_CHANGE,
    ]
    assert verdict.loc["mlp", ["order", "order_timed", "order_note"]].tolist() == [
        "quadratic",
        "quadratic",
        "",
    ]
    curves = res.table.set_index("method")
    assert (
        curves.loc["relative", "timed_note"] == REGIME_CHANGE and curves.loc["relative", "order"] == "cubic"
    )
    rates = res.rates[res.rates["method"] == "relative"].set_index("dim")
    best = int(rates["gflops"].idxmax())
    assert best < 4096 and rates.loc[4096, "gflops"] < rates.loc[best, "gflops"]
    line = next(x for x in cost_sections.method_lines(res) if x.startswith("relative"))
    assert line.startswith("relative: quadratic (no D³ work in the count); timed cubic: timings grow faster")
    assert (
        f"from D ≈ {best} ({rates.loc[best, 'gflops']:.3g} → {rates.loc[4096, 'gflops']:.3g} GFLOP/s" in line
    )
    assert line.endswith(f"a {REGIME_CHANGE}, not a D³ term")
    assert rates.loc[4096, "pct_of_peak"] == pytest.approx(100 * rates.loc[4096, "gflops"] / 120.0)


def test_predictions_and_figures_draw_the_counted_order_not_a_timed_regime_change() -> None:
    runs = _runs(
        {
            "relative": (lambda d: 1.5e-3 + 6e-9 * d**2, relative_flops),
            "lu": (lambda d: 1.5e-3 + 9e-9 * d**2 + 3e-12 * d**3, lambda d: 22 * B * d * d),
        }
    )
    res = _analyse(runs)
    (lu,) = [g for g in res.groups if g.labels["method"] == "lu"]
    assert (lu.order, lu.model_order) == ("cubic", "quadratic")
    # the accepted model is t0 + a·D²: the speedup levels off instead of growing with a rejected D³ term
    pred = predictions.prediction_table(res.groups, [16384, 65536], "relative").set_index(["method", "dim"])
    far, farther = (pred.loc[("lu", d), "speedup_of_reference"] for d in (16384, 65536))
    assert far == pytest.approx(farther, rel=0.02) and pred.loc[("lu", 16384), "order"] == "quadratic"
    assert np.allclose(lu.fit.model_coef, lu.fit.quad_coef)
    # without counts the timed order decides, as before
    (timed,) = [g for g in _analyse(runs.assign(flops_per_step=np.nan)).groups if g.labels["method"] == "lu"]
    assert timed.model_order == "cubic" and np.allclose(timed.fit.model_coef, timed.fit.coef)


def test_counted_d3_work_that_timings_miss_is_cubic_and_says_so() -> None:
    runs = _runs({"ordinary": (lambda d: 2e-3 + 8e-9 * d**2, ordinary_flops)})
    verdict = _analyse(runs).orders.set_index("method").loc["ordinary"]
    assert (verdict["order"], verdict["order_timed"], verdict["order_note"]) == (
        "cubic",
        "quadratic",
        HIDDEN_D3,
    )
    line = cost_sections.method_lines(_analyse(runs))[0]
    assert line.startswith("ordinary: cubic (D³ work ") and "does not show in the timings" in line


def test_runs_without_counts_keep_the_timed_order_and_its_words() -> None:
    runs = _runs({"relative": (lambda d: 1.5e-3 + 6e-9 * d**2, None)})
    res = _analyse(runs)
    verdict = res.orders.set_index("method").loc["relative"]
    assert (verdict["order"], verdict["order_counted"], verdict["order_timed"]) == (
        "quadratic",
        "",
        "quadratic",
    )
    assert cost_sections.method_lines(res)[0].startswith("relative: quadratic — c not significant")
    assert res.rates.empty and res.counted.empty


def test_rate_table_without_a_measured_peak() -> None:
    runs = _runs({"mlp": (lambda d: 1e-3 + 5e-9 * d**2, lambda d: 10 * B * d * d)})
    rates = rate_table(runs)
    assert rates["gflops"].tolist() == pytest.approx(
        [10 * B * d * d / (1e-3 + 5e-9 * d**2) / 1e9 for d in DIMS], rel=0.1
    )
    assert rates["pct_of_peak"].isna().all() and (rates["flops_per_byte"] > 0).all()


def test_a_rate_whose_timing_was_flagged_is_marked_and_drawn_hollow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.pyplot as plt

    from analysis.cost_figures import plot_achieved_rate
    from analysis.counted import mark_disturbed
    from analysis.figures import FigureContext

    runs = _runs({"relative": (lambda d: 1e-3 + 6e-9 * d**2, relative_flops)})
    slow = runs["dim"] == DIMS[1]
    runs.loc[slow, ["sec_per_iter", "sec_per_iter_min"]] *= (
        50.0  # a first trial timed while the cores were busy
    )
    res = _analyse(runs)
    assert not res.flagged.empty
    marked = res.rates.set_index("dim")["disturbed"]
    assert marked[DIMS[1]] and not marked.drop(DIMS[1]).any()
    assert not mark_disturbed(res.rates, res.flagged.iloc[0:0])["disturbed"].any()

    kept = []
    monkeypatch.setattr(plt, "close", lambda fig=None: kept.append(fig))  # keep the figure to look at it
    plot_achieved_rate(res.rates, FigureContext(("s",), ("cpu",), "today", "now"), tmp_path)
    hollow = [
        line
        for fig in kept
        for ax in fig.axes
        for line in ax.get_lines()
        if line.get_markerfacecolor() == "white"
    ]
    assert len(hollow) == 1 and list(hollow[0].get_xdata()) == [float(DIMS[1])]


def test_the_report_lists_what_the_grid_cut_and_why() -> None:
    info = SweepInfo(
        "s",
        "scaling",
        "p",
        params={
            "dims": "128,256,512,1024,2048,4096",
            "methods": "relative,jacobian",
            "max_dim.jacobian": "64",
            "max_dim.relative": "4096",
        },
    )
    assert capped_lines([info]) == ["jacobian (s): D = 128…4096 (6 D) not run: capped at 64 by max_dim"]
    runs = pd.DataFrame(
        {
            "sweep": ["s"] * 2,
            "method": ["ordinary"] * 2,
            "dim": [2048, 4096],
            "status": ["skipped_over_budget"] * 2,
            "status_reason": ["ordinary took 4 s/step at D=1024 > budget 3 s"] * 2,
        }
    )
    assert skipped_lines(runs) == [
        "ordinary (s): D = 2048, 4096 skipped: ordinary took 4 s/step at D=1024 > budget 3 s"
    ]
