"""Typed results: arms (one setting over seeds), paired comparisons, and an experiment holding both."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from benchmarks.quality.runs import RunResult, RunSpec, run_all
from benchmarks.quality.stats import PairedDiff, mean_and_se, paired_difference


@dataclass
class Arm:
    """One setting (method, optimiser, init, ...) run over the paired seeds."""

    label: str
    runs: list[RunResult]

    @property
    def finite(self) -> list[RunResult]:
        return [r for r in self.runs if not r.diverged]

    @property
    def n_diverged(self) -> int:
        return len(self.runs) - len(self.finite)

    @property
    def n_cap_cut(self) -> int:
        return sum(r.cap_cut for r in self.runs)

    def gain(self) -> tuple[float, float]:
        """Mean gain over the Gaussian (nats per sample) and its SE over the finite runs."""
        gains = [r.gain for r in self.finite]
        return mean_and_se(gains) if gains else (math.nan, math.nan)

    def mean(self, key: Callable[[RunResult], float]) -> float:
        values = [key(r) for r in self.finite]
        return statistics.fmean(values) if values else math.nan

    def median_best_epoch(self) -> float:
        epochs = [r.best_epoch for r in self.finite]
        return float(statistics.median(epochs)) if epochs else math.nan

    def as_dict(self) -> dict[str, object]:
        gain, se = self.gain()
        return {
            "label": self.label,
            "settings": _settings(self.runs[0].spec),
            "mean_test_ll": self.mean(lambda r: r.test_ll),
            "mean_gaussian_test_ll": self.mean(lambda r: r.gaussian_test_ll),
            "gain": gain,
            "gain_se": se,
            "median_best_epoch": self.median_best_epoch(),
            "n_diverged": self.n_diverged,
            "n_cap_cut": self.n_cap_cut,
            "runs": [r.as_dict() for r in self.runs],
        }


@dataclass
class Comparison:
    """``candidate − baseline`` test LL over the seeds where neither diverged."""

    label: str
    candidate: Arm
    baseline: Arm

    def test(self) -> PairedDiff | None:
        pairs = [
            (c.test_ll, b.test_ll)
            for c, b in zip(self.candidate.runs, self.baseline.runs, strict=True)
            if not (c.diverged or b.diverged)
        ]
        if not pairs:
            return None
        return paired_difference([c for c, _ in pairs], [b for _, b in pairs])

    def as_dict(self) -> dict[str, object]:
        test = self.test()
        return {
            "label": self.label,
            "candidate": self.candidate.label,
            "baseline": self.baseline.label,
            "test": None if test is None else vars(test),
        }


@dataclass
class Experiment:
    """A named set of arms over the same seeds and the comparisons read from them."""

    name: str
    title: str
    arms: dict[str, Arm] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)

    def compare(self, label: str, candidate: str, baseline: str) -> None:
        self.comparisons.append(Comparison(label, self.arms[candidate], self.arms[baseline]))

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "title": self.title,
            "arms": [arm.as_dict() for arm in self.arms.values()],
            "comparisons": [c.as_dict() for c in self.comparisons],
        }


def run_arms(
    name: str,
    title: str,
    arms: dict[str, list[RunSpec]],
    comparisons: Sequence[tuple[str, str, str]],
    workers: int,
    log: Callable[[str], None],
) -> Experiment:
    """Run every arm's specs (all in one pool) and build the :class:`Experiment` with its comparisons."""
    log(f"== {title}")
    flat = [spec for specs in arms.values() for spec in specs]
    results = iter(run_all(flat, workers, log))
    experiment = Experiment(name, title)
    for label, specs in arms.items():
        experiment.arms[label] = Arm(label, [next(results) for _ in specs])
    for label, candidate, baseline in comparisons:
        experiment.compare(label, candidate, baseline)
    return experiment


def _settings(spec: RunSpec) -> dict[str, object]:
    return {
        "dataset": spec.dataset,
        "method": spec.method,
        "optimizer": spec.optimizer,
        "lr": spec.lr,
        "alpha": spec.alpha,
        "batch_size": spec.batch_size,
        "depth": spec.depth,
        "patience": spec.patience,
        "max_epochs": spec.max_epochs,
        "init": spec.init,
        **dict(spec.data_options),
    }
