"""Scaling reports from MLflow sweeps: exponent fits, speedups, learning curves, HPO views.

Reads only MLflow (and pandas/numpy/matplotlib); never imports torch, ray or the `study` package.
"""

from analysis.errors import ReportError
from analysis.learning import best_configs, kl_gap_table, time_to_target
from analysis.loading import SweepData, SweepInfo, load_histories, load_runs, load_sweep_data
from analysis.report import Report, build_report
from analysis.scaling import (
    ExponentFit,
    crossover_table,
    default_min_dim,
    fit_exponent,
    fit_table,
    overhead_table,
    speedup_table,
    verdict,
)

__all__ = [
    "ExponentFit",
    "Report",
    "ReportError",
    "SweepData",
    "SweepInfo",
    "best_configs",
    "build_report",
    "crossover_table",
    "default_min_dim",
    "fit_exponent",
    "fit_table",
    "kl_gap_table",
    "load_histories",
    "load_runs",
    "load_sweep_data",
    "overhead_table",
    "speedup_table",
    "time_to_target",
    "verdict",
]
