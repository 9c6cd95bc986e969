"""Exponent fits, verdicts, speedups and crossovers on synthetic timings with known truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import ReportError, crossover_table, default_min_dim, fit_exponent, verdict
from analysis.scaling import fit_table, speedup_table

DIMS = np.array([64, 128, 256, 512, 1024, 2048, 4096], dtype=float)


def _noisy(k: float, seed: int, repeats: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Timings c·Dᵏ with 10% multiplicative (log-normal) noise."""
    rng = np.random.default_rng(seed)
    dims = np.repeat(DIMS, repeats)
    return dims, 3e-9 * dims**k * np.exp(rng.normal(0.0, 0.1, dims.size))


@pytest.mark.parametrize("k_true", [2.0, 3.0])
def test_fit_recovers_exponent_and_interval_contains_truth(k_true: float) -> None:
    dims, times = _noisy(k_true, seed=7, repeats=2)
    fit = fit_exponent(dims, times, seed=0)
    assert fit.ci_low <= k_true <= fit.ci_high
    assert abs(fit.k - k_true) < 0.15
    # informative: the interval separates quadratic from cubic
    other = 5.0 - k_true
    assert not fit.ci_low <= other <= fit.ci_high
    assert fit.min_dim == default_min_dim(DIMS) == 512.0
    assert fit.n_dims == 4 and fit.n_points == 8
    assert verdict(fit.k) == ("quadratic" if k_true == 2.0 else "cubic")


def test_interval_coverage_over_many_noisy_sweeps() -> None:
    hits = 0
    for seed in range(60):
        dims, times = _noisy(2.0, seed, repeats=2)
        fit = fit_exponent(dims, times, n_boot=500, seed=seed)
        hits += fit.ci_low <= 2.0 <= fit.ci_high
        assert fit.ci_high - fit.ci_low < 0.6
    assert hits >= 51  # nominal 95%; ≥ 85% allows for Monte-Carlo error over 60 sweeps


def test_fit_matches_numpy_polyfit_and_predicts() -> None:
    dims, times = _noisy(2.5, seed=3)
    fit = fit_exponent(dims, times, min_dim=64)
    slope, intercept = np.polyfit(np.log(dims), np.log(times), 1)
    assert fit.k == pytest.approx(slope, rel=1e-10)
    assert fit.log_c == pytest.approx(intercept, rel=1e-10)
    np.testing.assert_allclose(fit.predict([100.0]), np.exp(intercept) * 100.0**slope)


def test_bootstrap_is_seeded() -> None:
    dims, times = _noisy(2.0, seed=1)
    a, b = fit_exponent(dims, times, seed=5), fit_exponent(dims, times, seed=5)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)


def test_refuses_fewer_than_three_distinct_dims() -> None:
    with pytest.raises(ReportError, match="at least 3 distinct D"):
        fit_exponent([64, 64, 128, 128], [1.0, 1.1, 4.0, 4.2])
    with pytest.raises(ReportError, match=r"D ≥ 2048"):
        fit_exponent(DIMS, DIMS**2, min_dim=2048)


@pytest.mark.parametrize(
    ("dims", "values", "message"),
    [
        ([64, 128], [1.0], "differ in length"),
        ([64, 128, 256], [1.0, 0.0, 2.0], "positive"),
        ([64, 128, 256], [1.0, float("nan"), 2.0], "finite"),
    ],
)
def test_bad_fit_input(dims: list[float], values: list[float], message: str) -> None:
    with pytest.raises(ReportError, match=message):
        fit_exponent(dims, values)


def test_verdict_bands() -> None:
    assert [verdict(k) for k in (1.0, 2.0, 2.5, 3.0, 3.6, float("nan"))] == [
        "sub-quadratic",
        "quadratic",
        "between quadratic and cubic",
        "cubic",
        "super-cubic",
        "not fitted",
    ]


def _runs(laws: dict[str, float], dims: list[int]) -> pd.DataFrame:
    rows = [
        {
            "sweep": "s",
            "device_name": "cpu",
            "method": m,
            "depth": 2,
            "batch_size": 10,
            "dim": d,
            "status": "ok",
            "sec_per_iter": f(d) if callable(f) else f,
        }
        for m, f in laws.items()
        for d in dims
    ]
    frame = pd.DataFrame(rows)
    return frame.astype({"dim": "Int64", "depth": "Int64", "batch_size": "Int64"})


def test_speedup_and_crossover_interpolated_in_log_log() -> None:
    dims = [64, 128, 256, 512]
    runs = _runs(
        {
            "relative": lambda d: 1e-6 * d**2,
            "ordinary": lambda d: 1e-6 * 128 * d,  # linear: equals relative at D = 128
            "autodiff": lambda d: 1e-3 * d**3,
            "mlp": lambda d: 0.5e-6 * d**2,
        },
        dims,
    )
    speed = speedup_table(runs)
    ordinary = speed[speed["baseline"] == "ordinary"].sort_values("dim")
    np.testing.assert_allclose(ordinary["speedup"], 128 / np.array(dims, dtype=float))
    cross = crossover_table(speed).set_index("baseline")
    # ordinary/relative = 128/D: relative is faster (ratio > 1) only below D = 128
    assert cross.loc["ordinary", "crossover"].startswith("never")
    assert cross.loc["autodiff", "crossover"].startswith("always")
    assert cross.loc["mlp", "crossover"].startswith("never")
    flipped = _runs({"relative": lambda d: 1e-6 * 128 * d, "ordinary": lambda d: 1e-6 * d**2}, dims)
    crossed = crossover_table(speedup_table(flipped)).set_index("baseline")
    assert crossed.loc["ordinary", "crossover_dim"] == pytest.approx(128.0)


def test_fit_table_falls_back_to_largest_three_dims_and_notes_it() -> None:
    runs = _runs(
        {"relative": lambda d: 1e-9 * d**2, "autodiff": lambda d: 1e-9 * d**3},
        [64, 128, 256, 512, 1024, 2048],
    )
    runs = runs[~((runs["method"] == "autodiff") & (runs["dim"] >= 1024))]
    fits = fit_table(runs, n_boot=200).set_index("method")
    assert fits.loc["relative", "threshold"] == 512
    assert fits.loc["relative", "k"] == pytest.approx(2.0)
    assert fits.loc["autodiff", "k"] == pytest.approx(3.0)
    assert fits.loc["autodiff", "fit_min_dim"] == 128
    assert "largest 3 D" in fits.loc["autodiff", "note"]
    strict = fit_table(runs, min_dim=512, n_boot=200).set_index("method")
    assert np.isnan(strict.loc["autodiff", "k"])
    assert "at least 3 distinct D" in strict.loc["autodiff", "note"]
