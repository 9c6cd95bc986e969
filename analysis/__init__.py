"""Scaling reports from MLflow sweeps: cost models and the order of each method's step, predictions,
speedups, learning curves, HPO views.

Reads only MLflow (and pandas/numpy/matplotlib); never imports torch, ray or the `study` package.
"""

from analysis.convergence import kl_at_convergence, paired_difference, time_to_target, trial_outcomes
from analysis.cost_model import CostFit, fit_cost_model, half_dim, order_rule
from analysis.cost_tables import GroupFit, cost_table, fit_groups, flag_disturbed, method_orders
from analysis.errors import ReportError
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
    "CostFit",
    "ExponentFit",
    "GroupFit",
    "Report",
    "ReportError",
    "SweepData",
    "SweepInfo",
    "build_report",
    "cost_table",
    "crossover_table",
    "default_min_dim",
    "fit_cost_model",
    "fit_exponent",
    "fit_groups",
    "fit_table",
    "flag_disturbed",
    "half_dim",
    "kl_at_convergence",
    "load_histories",
    "load_runs",
    "load_sweep_data",
    "method_orders",
    "order_rule",
    "overhead_table",
    "paired_difference",
    "speedup_table",
    "time_to_target",
    "trial_outcomes",
    "verdict",
]
