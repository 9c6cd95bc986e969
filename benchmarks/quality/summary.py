"""The markdown summary, rendered from the typed results (no string-keyed digging)."""

from __future__ import annotations

import math

from benchmarks._common import markdown_table
from benchmarks.quality.results import Experiment


def _num(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "–"


def _pm(mean: float, se: float) -> str:
    if not math.isfinite(mean):
        return "–"
    return f"{mean:+.2f} ± {_num(se)}" if math.isfinite(se) else f"{mean:+.2f}"


def experiment_markdown(experiment: Experiment) -> str:
    """Two tables: each arm's LL next to its Gaussian yardstick, then the paired comparisons."""
    arm_rows = []
    for arm in experiment.arms.values():
        gain, se = arm.gain()
        arm_rows.append(
            [
                arm.label,
                _num(arm.mean(lambda r: r.test_ll)),
                _num(arm.mean(lambda r: r.gaussian_test_ll)),
                _pm(gain, se),
                _num(arm.median_best_epoch(), 0),
                f"{arm.n_diverged}/{len(arm.runs)}",
                f"{arm.n_cap_cut}",
            ]
        )
    header = ["arm", "test LL", "Gaussian", "gain ± SE", "best epoch (median)", "diverged", "cut by cap"]
    comparison_rows = []
    for comparison in experiment.comparisons:
        test = comparison.test()
        comparison_rows.append(
            [
                comparison.label,
                "–" if test is None else _pm(test.diff, test.se),
                "–" if test is None else f"{test.wins_a}/{test.n}",
            ]
        )
    parts = [f"### {experiment.title}", markdown_table(header, arm_rows)]
    if comparison_rows:
        parts.append(markdown_table(["paired test-LL difference", "Δ ± SE", "wins"], comparison_rows))
    truths = [
        r.true_test_ll for arm in experiment.arms.values() for r in arm.finite if r.true_test_ll is not None
    ]
    if truths:
        kl = [
            f"{arm.label} {_num(arm.mean(lambda r: r.true_test_ll - r.test_ll))}"  # type: ignore[operator]
            for arm in experiment.arms.values()
        ]
        parts.append(
            f"True test LL {_num(sum(truths) / len(truths))}; KL gap (true − test): " + ", ".join(kl) + "."
        )
    return "\n\n".join(parts)


def markdown_summary(experiments: list[Experiment]) -> str:
    return "\n\n".join(experiment_markdown(e) for e in experiments)
