"""The search read as a result: best against the yardstick and the default, importances from the runs,
and no section at all for a report without an HPO sweep."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import search
from analysis.builder import Builder
from analysis.figures import FigureContext

CTX = FigureContext(sweeps=("h",), devices=("cpu",), run_dates="today", generated="now")


def _trials(n: int = 16) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    rows, curves = [], []
    for i in range(n):
        lr = float(10 ** rng.uniform(-4, -2))
        alpha, depth, batch = (
            float(rng.uniform(0.05, 0.5)),
            int(rng.choice([1, 2, 3])),
            int(rng.choice([32, 64])),
        )
        best = -100.0 - 20.0 * abs(np.log10(lr) + 3.0) + 0.05 * rng.normal()  # only lr matters
        run_id = f"t{i}"
        rows.append(
            {
                "run_id": run_id,
                "sweep": "h",
                "kind": "hpo",
                "status": "ok",
                "method": "relative",
                "lr": lr,
                "alpha": alpha,
                "depth": depth,
                "batch_size": batch,
                "dim": 64,
                "dataset": "digits",
                "val_ll": best - 1.0,
            }
        )
        curves += [{"run_id": run_id, "step": s, "val_ll": best - 30.0 / s} for s in (10, 20, 40)]
    return pd.DataFrame(rows), pd.DataFrame(curves)


def _retrained() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "sweep": "h",
                "role": "best",
                "test_ll": -100.5,
                "reported_test_ll": -70.5,
                "gaussian_test_ll": -104.0,
                "reported_gaussian_test_ll": -74.0,
                "ll_offset": 30.0,
            },
            {
                "sweep": "h",
                "role": "default",
                "test_ll": -101.5,
                "reported_test_ll": -71.5,
                "gaussian_test_ll": -104.0,
                "reported_gaussian_test_ll": -74.0,
                "ll_offset": 30.0,
            },
        ]
    )


def test_importances_from_the_runs_find_the_parameter_that_matters() -> None:
    runs, curves = _trials()
    trials = search.search_trials(runs, curves)
    assert trials["best_val_ll"].tolist() == pytest.approx((runs["val_ll"] + 1.0 - 30.0 / 40).tolist())
    shares = search.importances(trials).set_index("parameter")["importance"]
    assert shares.sum() == pytest.approx(1.0) and shares.idxmax() == "lr" and shares["lr"] > 0.7


def test_the_outcome_puts_the_best_next_to_the_gaussian_and_the_default() -> None:
    runs, curves = _trials()
    row = search.outcome_table(search.search_trials(runs, curves), _retrained()).iloc[0]
    assert (row["best test LL"], row["default test LL"], row["Gaussian"]) == (-70.5, -71.5, -74.0)
    assert (row["gain over Gaussian"], row["gain over default"]) == pytest.approx((3.5, 1.0))


def test_search_section_says_what_the_search_is_worth(tmp_path: Path) -> None:
    runs, curves = _trials()
    b = Builder(tmp_path, CTX)
    section = search.search_section(b, runs, _retrained(), curves)
    assert section is not None
    verdict = section.paragraphs[0]
    assert "test LL of -70.50, 3.50 nats above the Gaussian yardstick (-74.00)" in verdict
    assert "it beats the default configuration trained the same way (-71.50) by 1.00 nats" in verdict
    assert {p.name for p in b.figures} >= {"hpo_ll_vs_budget.png", "hpo_importances.png"}
    assert (tmp_path / "tables" / "hpo_importances.csv").is_file()


def test_no_hpo_sweep_no_section(tmp_path: Path) -> None:
    runs, curves = _trials()
    runs["kind"] = "scaling"
    assert search.search_section(Builder(tmp_path, CTX), runs, _retrained().iloc[0:0], curves) is None
