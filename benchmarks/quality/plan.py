"""The sizes of every experiment; ``quick_plan`` shrinks them to a seconds-long smoke test."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Plan:
    """Seeds, α values and budgets. The defaults are the reference setting of the issue: depth 2, Adam
    lr 1e-3, batch 64, early stopping with patience 50 on the exact validation LL."""

    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    alphas: tuple[float, ...] = (0.3, 0.01)
    patience: int = 50
    max_epochs: int = 5000
    batch_size: int = 64
    sgd_lr: float = 1e-2
    digits_rows: int | None = None
    table_alphas: tuple[float, ...] = (0.3,)
    teacher_dims: tuple[int, ...] = (64,)
    teacher_n_train: int = 5000
    teacher_patience: int = 20
    # the peers experiment: autoregressive transforms of zuko's MAF (the dense flows keep depth 2)
    maf_transforms: int = 5
    # ... and the LU-factored flows once more at this learning rate (None: not), so that a gap is not just
    # the dense flows' step size (on teacher data neither rate helps: the LU flows sit on a long plateau
    # below the Gaussian that patience 20 stops on; see BENCHMARKS.md, "Against zuko and nflows")
    lu_lr: float | None = 3e-4
    # the budget experiment (LL within a training-time budget, teacher data at large D)
    budget_dims: tuple[int, ...] = (512, 1024)
    budgets_s: tuple[float, ...] = (10.0, 30.0)
    budget_seeds: int = 2
    budget_methods: tuple[str, ...] = ("relative", "ordinary", "autodiff")
    budget_n_train: int = 10000
    evals_per_budget: int = 10
    threads: int = 1


def quick_plan(threads: int = 1) -> Plan:
    return Plan(
        seeds=(0, 1),
        alphas=(0.3,),
        patience=2,
        max_epochs=3,
        digits_rows=120,
        teacher_dims=(6,),
        teacher_n_train=200,
        teacher_patience=2,
        maf_transforms=3,
        budget_dims=(8,),
        budgets_s=(0.2, 0.4),
        budget_seeds=1,
        budget_methods=("relative", "ordinary"),
        budget_n_train=200,
        evals_per_budget=3,
        threads=threads,
    )


def with_seeds(plan: Plan, count: int) -> Plan:
    return replace(plan, seeds=tuple(range(count)))
