"""A second real data set: scikit-learn's breast-cancer table (569 × 30), standardised, no download.

Reached through ``register_dataset`` + ``Dataset.from_arrays`` as a user would; LLs in the raw
features' space (the standardisation constant −Σ log s added back).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from benchmarks.quality.plan import Plan
from benchmarks.quality.results import Experiment, run_arms
from benchmarks.quality.runs import TABLE, RunSpec
from benchmarks.quality.variants import WEIGHT_ONLY


def table_experiment(plan: Plan, alpha: float, workers: int, log: Callable[[str], None]) -> Experiment:
    template = RunSpec(
        TABLE,
        "relative",
        0,
        alpha=alpha,
        batch_size=plan.batch_size,
        patience=plan.patience,
        max_epochs=plan.max_epochs,
        threads=plan.threads,
    )
    methods = {
        "ordinary": "ordinary",
        "relative": "relative",
        "(a) relative, weight-only metric": WEIGHT_ONLY,
    }
    arms = {label: [replace(template, seed=s, method=m) for s in plan.seeds] for label, m in methods.items()}
    comparisons = [
        ("relative − ordinary", "relative", "ordinary"),
        ("(a) weight-only − ordinary", "(a) relative, weight-only metric", "ordinary"),
    ]
    title = f"breast cancer (30-D), α = {alpha:g}"
    return run_arms(f"{TABLE} α={alpha:g}", title, arms, comparisons, workers, log)
