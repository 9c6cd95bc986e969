"""The learning section says what a sweep's fits can support: nothing about quality when most were cut
while still improving (one line, one small table, no LL panels); KL at convergence, the pairing and the
time to target when they converged; `mlp` never in a likelihood comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import learning
from analysis.builder import Builder
from analysis.figures import FigureContext
from analysis.render import fits, render_html
from analysis.schema import STILL_IMPROVING

CTX = FigureContext(sweeps=("s",), devices=("cpu",), run_dates="today", generated="now")


def _sweep(stopped: str, methods=("relative", "ordinary", "mlp"), dims=(16, 64), seeds=(0, 1, 2)):
    runs, curves = [], []
    for method in methods:
        for dim in dims:
            for seed in seeds:
                run_id = f"{method}-{dim}-{seed}"
                true_ll, final_gap = (
                    -1.2 * dim,
                    0.02 * dim * (1.2 if method == "ordinary" else 1.0) + 0.01 * seed,
                )
                speed = 1.0 if method == "relative" else 3.0
                for k in range(1, 9):
                    gap = final_gap + 50.0 * np.exp(-k)
                    curves.append(
                        {
                            "run_id": run_id,
                            "step": 10 * k,
                            "val_ll": true_ll - gap,
                            "train_time_s": speed * k,
                            "method": method,
                            "dim": dim,
                            "kind": "scaling",
                            "true_test_ll": true_ll,
                        }
                    )
                runs.append(
                    {
                        "run_id": run_id,
                        "sweep": "s",
                        "kind": "scaling",
                        "status": "ok",
                        "status_reason": "",
                        "method": method,
                        "dim": dim,
                        "seed": seed,
                        "depth": 2,
                        "batch_size": 100,
                        "lr": 1e-3,
                        "dataset": "teacher",
                        "true_test_ll": true_ll,
                        "test_ll": true_ll - final_gap,
                        "val_ll": true_ll - final_gap,
                        "gaussian_test_ll": true_ll - 3.0,
                        "train_time_s": 8 * speed,
                        "stopped_reason": stopped,
                    }
                )
    return pd.DataFrame(runs), pd.DataFrame(curves)


def _section(tmp_path: Path, stopped: str):
    runs, curves = _sweep(stopped)
    b = Builder(tmp_path, CTX)
    return b, learning.learning_section(b, runs, curves)


def test_mostly_cut_fits_do_not_compare_quality(tmp_path: Path) -> None:
    _, section = _section(tmp_path, "time_budget" + STILL_IMPROVING)
    assert section.paragraphs[0].startswith("Quality cannot be compared in this sweep: 12 of 12 fits")
    assert len(section.tables) == 1 and not section.figures
    _, table, csv = section.tables[0]
    assert set(table["method"]) == {"relative", "ordinary"} and fits(table) and csv == "learning_trials"
    assert any("'mlp' is left out" in note for note in section.notes)
    assert (tmp_path / "tables" / "learning_trials.csv").is_file()


def test_converged_fits_give_kl_at_convergence_pairing_and_time_to_target(tmp_path: Path) -> None:
    b, section = _section(tmp_path, "patience")
    captions = [t[0] for t in section.tables]
    assert any(c.startswith("KL gap at convergence (nats)") for c in captions)
    assert any(c.startswith("KL gap per dimension") for c in captions)
    assert any(c.startswith("KL gap relative − ordinary, paired by seed") for c in captions)
    assert any(c.startswith("Seconds to within 1 nat of the best") for c in captions)
    for _, table, *_ in section.tables:
        assert "mlp" not in table.columns and fits(table)
    kl = next(t for c, t, *_ in section.tables if c.startswith("KL gap at convergence (nats)"))
    assert list(kl.columns) == ["D", "relative", "ordinary"] and kl["D"].tolist() == [16, 64]
    assert kl.loc[1, "relative"] == "1.29 [1.28, 1.30]"  # 0.02·64 + 0.01·seed, median [min, max]
    paired = b.frames["paired_difference"].set_index("dim")
    assert paired.loc[64, "mean_diff"] == pytest.approx(-0.2 * 0.02 * 64)
    first = b.frames["first_to_target"].set_index(["dim", "method"])
    assert first.loc[(64, "relative"), "first"] == 3  # three times faster: first in every seed
    assert section.figures  # KL against D, KL against time
    html = render_html("t", [section])
    assert "kl_at_convergence.csv" in html


def test_the_learning_headline_states_kl_pairing_and_who_was_first(tmp_path: Path) -> None:
    from analysis import convergence

    b, _ = _section(tmp_path, "patience")
    lines = convergence.headline_lines(
        b.frames["kl_at_convergence"], b.frames["paired_difference"], b.frames["first_to_target"]
    )
    assert len(lines) == 2 and lines[1].startswith("D = 64: KL gap at convergence relative 1.29 [1.28, 1.30]")
    assert "relative − ordinary -0.256 [" in lines[1] and "(3 seeds)" in lines[1]
    assert "first within 1 nat of the best: relative (3 of 3 seeds" in lines[1]


def test_robust_limits_clip_the_early_evaluations_and_count_them() -> None:
    from analysis.learning_figures import robust_limits, settled

    curve = pd.DataFrame(
        {
            "run_id": "r",
            "train_time_s": np.arange(1.0, 21.0),
            "y": [-5000.0, -3000.0] + [-100.0 + k for k in range(18)],
        }
    )
    (low, high), clipped = robust_limits(curve["y"].to_numpy(), settled(curve))
    assert clipped == 2 and -3000 < low < -100 and high > -83  # the first tenth of the evaluations
    short = curve.iloc[:2]
    assert settled(short).tolist() == [-5000.0, -3000.0]  # two points: nothing is dropped


def test_no_panel_with_fewer_than_two_points(tmp_path: Path) -> None:
    from analysis.learning_figures import panel_dims

    curves = pd.DataFrame({"run_id": ["a", "a", "b"], "dim": [8, 8, 16], "train_time_s": [1.0, 2.0, 1.0]})
    assert panel_dims(curves) == [8]
