"""Against what users would otherwise pick: relgrad's flows beside zuko's and nflows' (the peers extra).

On each data set (standardised digits, the breast-cancer table, teacher data at D = 64), paired over the
seeds and trained alike (Adam lr 1e-3, batch 64, to the validation optimum by patience; every LL in the
data set's reported space next to the Gaussian yardstick): relgrad's ``relative``, ``ordinary`` and
``lu``, and each installed peer: ``zuko_lu`` and ``nflows_lu`` (DenseFlow's architecture, depth 2, the same
α), ``zuko_maf`` (``Plan.maf_transforms`` autoregressive transforms: it has no σ and no dense layers, so it
gets the depth users give a MAF rather than the dense flows'). The LU-factored flows (``lu``, ``zuko_lu``,
``nflows_lu``) run once more at ``Plan.lu_lr``: the shared 1e-3 is the dense flows' rate, and the second
rate checks that a gap is not just a step size chosen for another parameterisation. Each arm is compared
with ``relative``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from benchmarks.quality.plan import Plan
from benchmarks.quality.results import Experiment, run_arms
from benchmarks.quality.runs import TABLE, RunSpec
from relgrad_core.peers import installed_peers

REFERENCE = "relative"
OWN = ("relative", "ordinary", "lu")
MAF = "zuko_maf"
#: Methods whose weights are LU factors (run again at ``Plan.lu_lr``).
LU_FACTORED = ("lu", "zuko_lu", "nflows_lu")


def _datasets(plan: Plan) -> list[tuple[str, str, RunSpec]]:
    """(name, title, template run) per data set, with the plan's sizes."""
    common = {"batch_size": plan.batch_size, "max_epochs": plan.max_epochs, "threads": plan.threads}
    digits_options = (("max_rows", plan.digits_rows),) if plan.digits_rows else ()
    dim = plan.teacher_dims[0]
    teacher_options = (("dim", dim), ("depth", 2), ("n_train", plan.teacher_n_train))
    return [
        (
            "digits",
            "digits (standardised), α = 0.3",
            RunSpec("digits", REFERENCE, 0, patience=plan.patience, data_options=digits_options, **common),
        ),
        (
            TABLE,
            "breast cancer (30-D), α = 0.3",
            RunSpec(TABLE, REFERENCE, 0, patience=plan.patience, **common),
        ),
        (
            f"teacher D={dim}",
            f"teacher, D = {dim}, α = 0.3",
            RunSpec(
                "teacher",
                REFERENCE,
                0,
                patience=plan.teacher_patience,
                data_options=teacher_options,
                **common,
            ),
        ),
    ]


def peers_experiment(plan: Plan, workers: int, log: Callable[[str], None]) -> list[Experiment]:
    """One experiment per data set: relgrad's arms and every installed peer, each against ``relative``."""
    peers = installed_peers()
    if not peers:
        log('no peer library installed (pip install -e ".[peers]"): only relgrad\'s own arms run')
    methods = (*OWN, *peers)
    experiments = []
    for name, title, template in _datasets(plan):
        arms = {
            m: [
                replace(template, method=m, seed=s, depth=plan.maf_transforms if m == MAF else template.depth)
                for s in plan.seeds
            ]
            for m in methods
        }
        if plan.lu_lr is not None:
            for m in (m for m in methods if m in LU_FACTORED):
                arms[f"{m}, lr {plan.lu_lr:g}"] = [replace(spec, lr=plan.lu_lr) for spec in arms[m]]
        comparisons = [(f"{m} − {REFERENCE}", m, REFERENCE) for m in arms if m != REFERENCE]
        experiments.append(
            run_arms(f"peers {name}", f"Against the peers: {title}", arms, comparisons, workers, log)
        )
    return experiments
