"""Relative vs ordinary on standardised digits, and which variants close the gap.

Per α (0.3, and the paper's 0.01), paired over the seeds:

* the reference: Adam lr 1e-3, batch 64, patience 50, both methods;
* (a) the bias left out of the metric (:mod:`benchmarks.quality.variants`);
* (b) LayerAdam (one RMS per tensor) for both methods, (c) plain SGD for both methods (α = 0.3 only);
* (d) init: raw logit pixels with the standardisation folded into the first layer (α = 0.3 only),
  for ordinary, relative and the weight-only metric: same function at step 0, large first-layer bias.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from benchmarks.quality.plan import Plan
from benchmarks.quality.results import Experiment, run_arms
from benchmarks.quality.runs import RunSpec
from benchmarks.quality.variants import WEIGHT_ONLY

REL, ORD = "relative", "ordinary"


def digits_experiment(plan: Plan, alpha: float, workers: int, log: Callable[[str], None]) -> Experiment:
    options = (("max_rows", plan.digits_rows),) if plan.digits_rows else ()
    template = RunSpec(
        "digits",
        REL,
        0,
        alpha=alpha,
        batch_size=plan.batch_size,
        patience=plan.patience,
        max_epochs=plan.max_epochs,
        data_options=options,
        threads=plan.threads,
    )
    settings: dict[str, dict[str, object]] = {
        "ordinary": {"method": ORD},
        "relative": {"method": REL},
        "(a) relative, weight-only metric": {"method": WEIGHT_ONLY},
        "(b) ordinary, LayerAdam": {"method": ORD, "optimizer": "layer_adam"},
        "(b) relative, LayerAdam": {"method": REL, "optimizer": "layer_adam"},
    }
    comparisons = [
        ("relative − ordinary", "relative", "ordinary"),
        ("(a) weight-only − ordinary", "(a) relative, weight-only metric", "ordinary"),
        ("(a) weight-only − relative", "(a) relative, weight-only metric", "relative"),
        ("(b) LayerAdam: relative − ordinary", "(b) relative, LayerAdam", "(b) ordinary, LayerAdam"),
        ("(b) relative: LayerAdam − Adam", "(b) relative, LayerAdam", "relative"),
    ]
    if alpha == plan.alphas[0]:
        sgd = {"optimizer": "sgd", "lr": plan.sgd_lr}
        settings |= {
            f"(c) ordinary, SGD lr {plan.sgd_lr:g}": {"method": ORD, **sgd},
            f"(c) relative, SGD lr {plan.sgd_lr:g}": {"method": REL, **sgd},
            "(d) ordinary, folded init": {"method": ORD, "init": "fold"},
            "(d) relative, folded init": {"method": REL, "init": "fold"},
            "(d) weight-only, folded init": {"method": WEIGHT_ONLY, "init": "fold"},
        }
        comparisons += [
            (
                "(c) SGD: relative − ordinary",
                f"(c) relative, SGD lr {plan.sgd_lr:g}",
                f"(c) ordinary, SGD lr {plan.sgd_lr:g}",
            ),
            ("(d) folded: relative − ordinary", "(d) relative, folded init", "(d) ordinary, folded init"),
            (
                "(d) folded: weight-only − ordinary",
                "(d) weight-only, folded init",
                "(d) ordinary, folded init",
            ),
            ("(d) relative: folded − standardised", "(d) relative, folded init", "relative"),
        ]
    arms = {label: [replace(template, seed=s, **o) for s in plan.seeds] for label, o in settings.items()}  # type: ignore[arg-type]
    title = f"digits, α = {alpha:g}"
    return run_arms(f"digits α={alpha:g}", title, arms, comparisons, workers, log)
