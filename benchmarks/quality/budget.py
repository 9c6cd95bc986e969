"""Test LL reached within fixed training-time budgets (teacher data at large D; time-dependent).

Per (D, method, seed) one run trains for the largest budget with an evaluation every ``k`` steps (``k`` set
from a few timed steps so that the shortest budget holds about ``evals_per_budget`` evaluations); the
test LL of the best-validation evaluation whose training time fits a budget is that budget's entry.
Runs go one at a time: it measures time.
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from benchmarks._common import markdown_table
from benchmarks.quality.plan import Plan
from relgrad_core import evaluate_nll, fit, load_dataset, make_flow, time_step


@dataclass
class BudgetRun:
    """One run's trace: ``(train_time_s, val_ll, test_ll)`` at every evaluation."""

    dim: int
    method: str
    seed: int
    budget_s: float
    steps: int
    true_test_ll: float
    trace: list[tuple[float, float, float]] = field(default_factory=list)

    def within(self, budget_s: float) -> float | None:
        """Test LL of the best-validation evaluation inside ``budget_s`` (the run's own budget also
        takes its last evaluation, which ends a fraction of a step past it)."""
        eligible = [t for t in self.trace if t[0] <= budget_s]
        if self.trace and budget_s == self.budget_s and self.trace[-1] not in eligible:
            eligible.append(self.trace[-1])
        return max(eligible, key=lambda t: t[1])[2] if eligible else None


def budget_run(plan: Plan, dim: int, method: str, seed: int) -> BudgetRun:
    torch.set_num_threads(plan.threads)
    data = load_dataset("teacher", seed=seed, dim=dim, depth=2, n_train=plan.budget_n_train)
    flow = make_flow(method, dim, 2, seed=seed, device="cpu")
    timing = time_step(
        copy.deepcopy(flow), data.train[:100], method, warmup=2, repeats=5, measure_memory=False
    )
    steps = max(1, int(min(plan.budgets_s) / plan.evals_per_budget / timing.median))
    run = BudgetRun(dim, method, seed, max(plan.budgets_s), 0, float(data.true_test_ll or 0.0))

    def track(record: object) -> None:
        run.trace.append((record.train_time_s, record.val_ll, -evaluate_nll(flow, data.test)))  # type: ignore[attr-defined]

    history = fit(
        flow,
        data,
        method=method,
        lr=1e-3,
        batch_size=100,
        epochs=10**7,
        patience=None,
        steps_per_epoch=steps,
        time_budget_s=run.budget_s,
        callback=track,
        seed=seed,
    )
    run.steps = history.records[-1].step
    return run


def budget_experiment(plan: Plan, log: Callable[[str], None]) -> list[BudgetRun]:
    runs = []
    for dim in plan.budget_dims:
        for method in plan.budget_methods:
            for seed in plan.seeds[: plan.budget_seeds]:
                runs.append(budget_run(plan, dim, method, seed))
                log(f"budget D={dim} {method} seed {seed}: {runs[-1].steps} steps")
    return runs


def budget_markdown(runs: list[BudgetRun], budgets_s: tuple[float, ...]) -> str:
    rows = []
    for dim in dict.fromkeys(r.dim for r in runs):
        for method in dict.fromkeys(r.method for r in runs):
            group = [r for r in runs if r.dim == dim and r.method == method]
            cells = []
            for budget in budgets_s:
                values = [v for v in (r.within(budget) for r in group) if v is not None]
                cells.append(f"{statistics.fmean(values):.1f}" if values else "–")
            steps = ", ".join(str(r.steps) for r in group)
            rows.append([dim, method, *cells, steps, f"{group[0].true_test_ll:.1f}"])
    header = ["D", "method", *(f"test LL at {b:g} s" for b in budgets_s), "steps", "true test LL"]
    return "### test LL within a training-time budget (teacher, mean over seeds)\n\n" + markdown_table(
        header, rows
    )


def budget_as_dicts(runs: list[BudgetRun], budgets_s: tuple[float, ...]) -> list[dict[str, object]]:
    return [asdict(r) | {"within": {f"{b:g}s": r.within(b) for b in budgets_s}} for r in runs]
