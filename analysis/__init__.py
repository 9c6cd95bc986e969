"""Scaling reports from MLflow sweeps: cost models and the order of each method's step, predictions,
speedups, learning curves, HPO views.

Reads only MLflow (and pandas/numpy/matplotlib); never imports torch, ray or the `study` package. The
names below are imported on first use (PEP 562), so that ``analysis.schema``, the tracking contract the
``relgrad`` command reads, costs nothing to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name -> the module that defines it.
_WHERE: dict[str, str] = {
    "kl_at_convergence": "convergence",
    "paired_difference": "convergence",
    "time_to_target": "convergence",
    "trial_outcomes": "convergence",
    "CostFit": "cost_model",
    "fit_cost_model": "cost_model",
    "half_dim": "cost_model",
    "order_rule": "cost_model",
    "GroupFit": "cost_tables",
    "cost_table": "cost_tables",
    "fit_groups": "cost_tables",
    "flag_disturbed": "cost_tables",
    "method_orders": "cost_tables",
    "ReportError": "errors",
    "SweepData": "loading",
    "SweepInfo": "loading",
    "load_histories": "loading",
    "load_runs": "loading",
    "load_sweep_data": "loading",
    "Report": "report",
    "build_report": "report",
    "ExponentFit": "scaling",
    "crossover_table": "scaling",
    "default_min_dim": "scaling",
    "fit_exponent": "scaling",
    "fit_table": "scaling",
    "overhead_table": "scaling",
    "speedup_table": "scaling",
    "verdict": "scaling",
}

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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"analysis.{module}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
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
