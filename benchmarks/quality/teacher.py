"""Teacher flows: data from a random DenseFlow of the student's family, so the true test LL is known
and ``true − test`` estimates the KL divergence from the truth to the model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from benchmarks.quality.plan import Plan
from benchmarks.quality.results import Experiment, run_arms
from benchmarks.quality.runs import RunSpec
from benchmarks.quality.variants import WEIGHT_ONLY


def teacher_experiment(plan: Plan, dim: int, workers: int, log: Callable[[str], None]) -> Experiment:
    options = (("dim", dim), ("depth", 2), ("n_train", plan.teacher_n_train))
    template = RunSpec(
        "teacher",
        "relative",
        0,
        batch_size=plan.batch_size,
        patience=plan.teacher_patience,
        max_epochs=plan.max_epochs,
        data_options=options,
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
    return run_arms(f"teacher D={dim}", f"teacher, D = {dim}, α = 0.3", arms, comparisons, workers, log)
