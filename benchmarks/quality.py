"""Quality: does the relative gradient reach the same test log-likelihood as the ordinary one?

``python -m benchmarks.quality [--quick] [--sections digits,teacher,budget] [--seeds 5] [--workers 2]``

Sections (every comparison is *paired*: one seed fixes the data split, the dequantisation noise, the
orthogonal init and the batch order, and both methods see exactly that):

* ``digits``: relative vs ordinary at the reference defaults (Adam, lr 1e-3, batch 100, depth 2, patience 30)
  for α = 0.3 and the paper's α = 0.01; then controlled experiments on the optimiser (lr grid, longer
  patience, plain SGD, batch size), and each method at its own best setting *selected by validation LL*.
* ``teacher``: data from a random DenseFlow (D = 64, 256), so the true test LL and the KL gap
  ``E[log p_true − log p_model]`` are known.
* ``budget``: LL reached within fixed training-time budgets (default 10 s, 30 s) at D = 512, 1024
  (relative, ordinary, autodiff; same init; first 2 seeds). Time-dependent: only meaningful on a quiet
  machine.

The paired difference of ``n`` seeds is ``d̄ = mean(a_s − b_s)`` with standard error ``sd(d)/√n``
(sample sd, ddof = 1). Results go to JSON (with the machine, date and command) and a markdown summary.
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import math
import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path

import torch

from benchmarks._common import machine_info, markdown_table, write_json
from relgrad_core import Dataset, Diverged, evaluate_nll, fit, load_dataset, make_flow, resolve_device
from relgrad_core.training import EpochRecord

SECTIONS = ("digits", "teacher", "budget")
BASELINE, CANDIDATE = "ordinary", "relative"


# --- statistics ---
@dataclass(frozen=True)
class PairedDiff:
    """``a − b`` over paired seeds: the means, the mean difference, its standard error, how often a wins."""

    n: int
    mean_a: float
    mean_b: float
    diff: float
    se: float
    wins_a: int

    def __str__(self) -> str:
        return f"{self.diff:+.3f} ± {self.se:.3f} (n={self.n})"


def paired_difference(a: Sequence[float], b: Sequence[float]) -> PairedDiff:
    """Mean of ``a_s − b_s`` and its standard error ``sd(a − b)/√n`` (ddof = 1; NaN when n = 1).

    Raises:
        ValueError: different lengths, no pairs, or a non-finite value.
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples need equal lengths, got {len(a)} and {len(b)}")
    if len(a) == 0:
        raise ValueError("paired difference of zero pairs")
    values = [float(v) for v in (*a, *b)]
    if not all(math.isfinite(v) for v in values):
        raise ValueError("paired difference needs finite values; drop diverged runs first")
    diffs = [float(x) - float(y) for x, y in zip(a, b, strict=True)]
    n = len(diffs)
    se = statistics.stdev(diffs) / math.sqrt(n) if n > 1 else math.nan
    return PairedDiff(
        n=n,
        mean_a=statistics.fmean(a),
        mean_b=statistics.fmean(b),
        diff=statistics.fmean(diffs),
        se=se,
        wins_a=sum(d > 0 for d in diffs),
    )


# --- one training run ---
@dataclass(frozen=True)
class RunSpec:
    """Everything that determines one training run (a picklable job for a worker process)."""

    dataset: str
    method: str
    seed: int
    data_options: tuple[tuple[str, object], ...] = ()
    lr: float = 1e-3
    batch_size: int = 100
    depth: int = 2
    alpha: float = 0.3
    epochs: int = 3000
    patience: int | None = 30
    optimizer: str = "adam"
    steps_per_epoch: int | None = None
    time_budget_s: float | None = None
    track_test: bool = False
    threads: int = 1
    device: str = "auto"


@dataclass
class RunResult:
    """Outcome of one run: best-validation weights evaluated on val and test (``None`` if it diverged)."""

    spec: RunSpec
    val_ll: float | None
    test_ll: float | None
    best_epoch: int
    epochs_run: int
    steps: int
    train_time_s: float
    stopped_reason: str
    diverged: bool = False
    true_test_ll: float | None = None
    # budget runs: (train_time_s, val_ll, test_ll) at each evaluation
    trace: list[tuple[float, float, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["spec"] = asdict(self.spec) | {"data_options": dict(self.spec.data_options)}
        return out


@lru_cache(maxsize=8)
def _load(name: str, seed: int, options: tuple[tuple[str, object], ...]) -> Dataset:
    return load_dataset(name, seed=seed, **dict(options))


def run_one(spec: RunSpec) -> RunResult:
    """Train one flow as ``spec`` says and evaluate the best-validation weights on the test split."""
    torch.set_num_threads(spec.threads)
    data = _load(spec.dataset, spec.seed, spec.data_options)
    flow = make_flow(spec.method, data.dim, spec.depth, alpha=spec.alpha, seed=spec.seed, device=spec.device)
    trace: list[tuple[float, float, float]] = []

    def track(record: EpochRecord) -> None:
        trace.append((record.train_time_s, record.val_ll, -evaluate_nll(flow, data.test)))

    try:
        history = fit(
            flow,
            data,
            method=spec.method,
            lr=spec.lr,
            batch_size=spec.batch_size,
            epochs=spec.epochs,
            patience=spec.patience,
            optimizer=spec.optimizer,
            steps_per_epoch=spec.steps_per_epoch,
            time_budget_s=spec.time_budget_s,
            callback=track if spec.track_test else None,
            seed=spec.seed,
        )
    except Diverged as err:
        return RunResult(
            spec, None, None, 0, err.epoch, err.step, math.nan, "diverged", True, data.true_test_ll, trace
        )
    last = history.records[-1]
    return RunResult(
        spec=spec,
        val_ll=-history.best_val_nll,
        test_ll=-evaluate_nll(flow, data.test),
        best_epoch=history.best_epoch,
        epochs_run=last.epoch,
        steps=last.step,
        train_time_s=last.train_time_s,
        stopped_reason=history.stopped_reason,
        true_test_ll=data.true_test_ll,
        trace=trace,
    )


def plateau_diagnostic(spec: RunSpec) -> dict[str, object]:
    """Is the point a ``spec`` run stops at a stationary point of the likelihood, or where its method stalls?

    Trains as ``spec`` says, then at the best-validation weights reports, per parameter, the norm of the
    full-batch Euclidean gradient and of the relative direction (zero together at a stationary point, as
    the preconditioner W̃ᵀW̃ is positive definite), each layer's condition number, and the validation LL
    reached by continuing from there (fresh Adam, same lr and patience) with each of the two methods.
    """
    from relgrad_core import backward

    torch.set_num_threads(spec.threads)
    data = _load(spec.dataset, spec.seed, spec.data_options)
    flow = make_flow(spec.method, data.dim, spec.depth, alpha=spec.alpha, seed=spec.seed, device=spec.device)
    train_args = {
        "lr": spec.lr,
        "batch_size": spec.batch_size,
        "epochs": spec.epochs,
        "patience": spec.patience,
        "optimizer": spec.optimizer,
    }
    history = fit(flow, data, method=spec.method, seed=spec.seed, **train_args)

    def grad_norms(method: str) -> list[float]:
        backward(flow, data.train.to(device=flow.device, dtype=flow.dtype), method)
        return [float(p.grad.norm()) for p in flow.parameters()]

    out: dict[str, object] = {
        "seed": spec.seed,
        "stopped_val_ll": -history.best_val_nll,
        "stopped_epoch": history.best_epoch,
        "grad_norm_ordinary": grad_norms(BASELINE),
        "grad_norm_relative": grad_norms(CANDIDATE),
        "parameters": [name for name, _ in flow.named_parameters()],
        "condition_numbers": [float(torch.linalg.cond(layer.weight.detach())) for layer in flow.layers],
    }
    for method in (CANDIDATE, BASELINE):
        resumed = copy.deepcopy(flow)
        try:
            extra = fit(resumed, data, method=method, seed=spec.seed + 10_000, **train_args)
            out[f"continued_{method}_val_ll"] = -extra.best_val_nll
            out[f"continued_{method}_test_ll"] = -evaluate_nll(resumed, data.test)
        except Diverged:
            out[f"continued_{method}_val_ll"] = None
    return out


def run_diagnostics(specs: Sequence[RunSpec], workers: int) -> list[dict[str, object]]:
    if workers <= 1:
        return [plateau_diagnostic(spec) for spec in specs]
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        return list(pool.map(plateau_diagnostic, specs))


def run_all(specs: Sequence[RunSpec], workers: int, log: Callable[[str], None] = print) -> list[RunResult]:
    """Run ``specs`` (in ``workers`` spawned processes when > 1), results in the order of ``specs``."""
    if workers <= 1:
        results = []
        for spec in specs:
            results.append(run_one(spec))
            log(_describe(results[-1]))
        return results
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(run_one, specs))
    for result in results:
        log(_describe(result))
    return results


def _describe(r: RunResult) -> str:
    s = r.spec
    ll = "diverged" if r.diverged else f"val {r.val_ll:.3f} test {r.test_ll:.3f}"
    return (
        f"  {s.dataset} {s.method:9s} seed {s.seed} {s.optimizer} lr {s.lr:g} α {s.alpha:g} "
        f"patience {s.patience}: {ll} (best epoch {r.best_epoch}/{r.epochs_run}, {r.train_time_s:.1f} s)"
    )


# --- comparisons ---
@dataclass
class Comparison:
    """Candidate vs baseline runs over the same seeds, summarised by paired differences of test and val LL."""

    label: str
    candidate: list[RunResult]
    baseline: list[RunResult]

    def finite_pairs(self) -> list[tuple[RunResult, RunResult]]:
        return [
            (c, b)
            for c, b in zip(self.candidate, self.baseline, strict=True)
            if not (c.diverged or b.diverged)
        ]

    def summary(self) -> dict[str, object]:
        pairs = self.finite_pairs()
        out: dict[str, object] = {
            "label": self.label,
            "candidate": _settings(self.candidate[0].spec),
            "baseline": _settings(self.baseline[0].spec),
            "seeds": [c.spec.seed for c in self.candidate],
            "n_diverged": {
                "candidate": sum(r.diverged for r in self.candidate),
                "baseline": sum(r.diverged for r in self.baseline),
            },
            "median_best_epoch": {
                "candidate": _median(r.best_epoch for r in self.candidate),
                "baseline": _median(r.best_epoch for r in self.baseline),
            },
        }
        if pairs:
            out["test"] = asdict(
                paired_difference([c.test_ll for c, _ in pairs], [b.test_ll for _, b in pairs])
            )
            out["val"] = asdict(paired_difference([c.val_ll for c, _ in pairs], [b.val_ll for _, b in pairs]))
            out["median_test_ll"] = {
                "candidate": _median(c.test_ll for c, _ in pairs),
                "baseline": _median(b.test_ll for _, b in pairs),
            }
            truths = [c.true_test_ll for c, _ in pairs]
            if all(t is not None for t in truths):
                out["true_test_ll"] = statistics.fmean(truths)
                # KL(p_true ‖ p_model) estimated on the test split: E[log p_true − log p_model]
                out["kl_gap"] = {
                    "candidate": statistics.fmean(c.true_test_ll - c.test_ll for c, _ in pairs),
                    "baseline": statistics.fmean(b.true_test_ll - b.test_ll for _, b in pairs),
                }
        return out


def _median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def _settings(spec: RunSpec) -> dict[str, object]:
    return {
        "method": spec.method,
        "optimizer": spec.optimizer,
        "lr": spec.lr,
        "alpha": spec.alpha,
        "patience": spec.patience,
        "epochs": spec.epochs,
        "batch_size": spec.batch_size,
        "depth": spec.depth,
        **dict(spec.data_options),
    }


def paired_specs(template: RunSpec, seeds: Sequence[int], **overrides: object) -> list[RunSpec]:
    """The template for every seed, with ``overrides`` applied (one method's half of a comparison)."""
    return [replace(template, seed=seed, **overrides) for seed in seeds]


def select_by_validation(groups: dict[str, list[RunResult]]) -> str:
    """Key of the group with the best mean validation LL over seeds (a diverged run counts as −∞)."""

    def score(results: list[RunResult]) -> float:
        if any(r.diverged for r in results):
            return -math.inf
        return statistics.fmean(r.val_ll for r in results)

    return max(groups, key=lambda key: score(groups[key]))


# --- sections ---
@dataclass(frozen=True)
class Plan:
    """Sizes of every section; ``quick`` shrinks them to a smoke test."""

    seeds: tuple[int, ...]
    alphas: tuple[float, ...] = (0.3, 0.01)
    digits_epochs: int = 3000
    digits_rows: int | None = None
    lr_grid: tuple[float, ...] = (3e-4, 1e-3, 3e-3)
    long_patience: int = 100
    sgd_lr_grid: tuple[float, ...] = (1e-3, 1e-2, 3e-2)
    # larger batches: less gradient noise in the relative direction, whose data part scales with |y|·‖W‖
    batch_grid: tuple[int, ...] = (500,)
    teacher_dims: tuple[int, ...] = (64, 256)
    teacher_n_train: int = 10000
    # 100 passes of 10k samples: a few minutes per run at D = 256 on one core; equal for both methods
    teacher_epochs: int = 100
    teacher_patience: int = 20
    budget_dims: tuple[int, ...] = (512, 1024)
    # 3 methods × 2 D × budget_seeds runs of max(budgets_s) each: about 6 minutes of training by default
    budgets_s: tuple[float, ...] = (10.0, 30.0)
    budget_seeds: int = 2
    budget_methods: tuple[str, ...] = ("relative", "ordinary", "autodiff")
    budget_n_train: int = 10000
    evals_per_budget: int = 10
    threads: int = 1
    device: str = "auto"


def quick_plan(threads: int, device: str) -> Plan:
    return Plan(
        seeds=(0, 1),
        alphas=(0.3,),
        digits_epochs=3,
        digits_rows=200,
        lr_grid=(1e-3, 3e-3),
        long_patience=2,
        sgd_lr_grid=(1e-3,),
        batch_grid=(50,),
        teacher_dims=(8,),
        teacher_n_train=300,
        teacher_epochs=3,
        teacher_patience=2,
        budget_dims=(16,),
        budgets_s=(0.2, 0.5),
        budget_methods=("relative", "ordinary"),
        budget_n_train=300,
        evals_per_budget=3,
        threads=threads,
        device=device,
    )


def digits_section(plan: Plan, workers: int, log: Callable[[str], None]) -> dict[str, object]:
    """Reference-default comparison per α, then the optimiser experiments at each α."""
    options = (("max_rows", plan.digits_rows),) if plan.digits_rows else ()
    base = RunSpec(
        "digits", CANDIDATE, 0, options, epochs=plan.digits_epochs, threads=plan.threads, device=plan.device
    )
    out: dict[str, object] = {}
    for alpha in plan.alphas:
        log(f"digits α = {alpha:g}")
        template = replace(base, alpha=alpha)
        # every setting tried, per method: name -> (overrides); the reference default comes first
        settings: dict[str, dict[str, object]] = {"reference": {}}
        settings |= {f"adam lr {lr:g}": {"lr": lr} for lr in plan.lr_grid if lr != template.lr}
        settings[f"patience {plan.long_patience}"] = {"patience": plan.long_patience}
        settings |= {f"batch {b}": {"batch_size": b} for b in plan.batch_grid if b != template.batch_size}
        settings |= {f"sgd lr {lr:g}": {"optimizer": "sgd", "lr": lr} for lr in plan.sgd_lr_grid}
        # Adam without per-coordinate normalisation: one RMS per tensor, so the relative direction's
        # structure survives the rescaling (tests the "Adam distorts the preconditioned direction" idea)
        settings[f"layer_adam lr {template.lr:g}"] = {"optimizer": "layer_adam"}
        specs = [
            spec
            for overrides in settings.values()
            for method in (CANDIDATE, BASELINE)
            for spec in paired_specs(template, plan.seeds, method=method, **overrides)
        ]
        results = iter(run_all(specs, workers, log))
        runs: dict[str, dict[str, list[RunResult]]] = {name: {} for name in settings}
        for name in settings:
            for method in (CANDIDATE, BASELINE):
                runs[name][method] = [next(results) for _ in plan.seeds]
        comparisons = {
            name: Comparison(f"α={alpha:g} {name}", r[CANDIDATE], r[BASELINE]).summary()
            for name, r in runs.items()
        }
        # each method at its own best setting, chosen on validation LL only (never on test)
        best = {
            m: select_by_validation({name: r[m] for name, r in runs.items()}) for m in (CANDIDATE, BASELINE)
        }
        tuned = Comparison(
            f"α={alpha:g} tuned ({CANDIDATE}: {best[CANDIDATE]}, {BASELINE}: {best[BASELINE]})",
            runs[best[CANDIDATE]][CANDIDATE],
            runs[best[BASELINE]][BASELINE],
        ).summary()
        tuned["selected"] = best
        # where does the reference relative run stop, and can either method go on from there?
        log(f"digits α = {alpha:g}: plateau diagnostic of the reference {CANDIDATE} runs")
        diagnostics = run_diagnostics(paired_specs(template, plan.seeds), workers)
        gains = {
            m: [d[f"continued_{m}_val_ll"] - d["stopped_val_ll"] for d in diagnostics]
            for m in (CANDIDATE, BASELINE)
        }
        plateau: dict[str, object] = {"runs": diagnostics}
        if all(g is not None for gs in gains.values() for g in gs):
            # validation-LL gained by continuing with ordinary minus that gained by continuing with relative
            plateau["continuation_gain"] = asdict(paired_difference(gains[BASELINE], gains[CANDIDATE]))
        out[f"alpha={alpha:g}"] = {
            "comparisons": comparisons,
            "tuned": tuned,
            "plateau": plateau,
            "runs": [r.as_dict() for by_method in runs.values() for rs in by_method.values() for r in rs],
        }
    return out


def teacher_section(plan: Plan, workers: int, log: Callable[[str], None]) -> dict[str, object]:
    """Relative vs ordinary on teacher data at each D: test LL, true LL, KL gap, paired difference."""
    out: dict[str, object] = {}
    for dim in plan.teacher_dims:
        log(f"teacher D = {dim}")
        options = (("dim", dim), ("depth", 2), ("n_train", plan.teacher_n_train))
        template = RunSpec(
            "teacher",
            CANDIDATE,
            0,
            options,
            epochs=plan.teacher_epochs,
            patience=plan.teacher_patience,
            threads=plan.threads,
            device=plan.device,
        )
        specs = [s for m in (CANDIDATE, BASELINE) for s in paired_specs(template, plan.seeds, method=m)]
        results = run_all(specs, workers, log)
        n = len(plan.seeds)
        comparison = Comparison(f"teacher D={dim}", results[:n], results[n:])
        out[f"D={dim}"] = {"comparison": comparison.summary(), "runs": [r.as_dict() for r in results]}
    return out


def _steps_between_evals(spec: RunSpec, plan: Plan) -> int:
    """Steps per evaluation so that the shortest budget holds about ``evals_per_budget`` evaluations,
    from a few timed steps on a throwaway copy of the flow."""
    from relgrad_core import time_step

    torch.set_num_threads(plan.threads)
    data = _load(spec.dataset, spec.seed, spec.data_options)
    flow = make_flow(spec.method, data.dim, spec.depth, alpha=spec.alpha, seed=spec.seed, device=spec.device)
    timing = time_step(
        copy.deepcopy(flow),
        data.train[: spec.batch_size],
        spec.method,
        warmup=2,
        repeats=5,
        measure_memory=False,
    )
    return max(1, int(min(plan.budgets_s) / plan.evals_per_budget / timing.median))


def ll_within_budget(result: RunResult, budget_s: float) -> dict[str, float | None]:
    """Test LL of the best-validation evaluation whose training time fits in ``budget_s``.

    The run itself stops at the first step past its own budget, so its last evaluation counts for that
    budget even though it ends a fraction of a step over.
    """
    trace = result.trace
    eligible = [t for t in trace if t[0] <= budget_s]
    if trace and result.spec.time_budget_s == budget_s and trace[-1] not in eligible:
        eligible.append(trace[-1])
    if not eligible:
        return {"val_ll": None, "test_ll": None, "train_time_s": None}
    best = max(eligible, key=lambda t: t[1])
    return {"val_ll": best[1], "test_ll": best[2], "train_time_s": best[0]}


def budget_section(plan: Plan, workers: int, log: Callable[[str], None]) -> dict[str, object]:
    """LL reached within each training-time budget, per D and method, from one run per (D, method, seed)
    with the largest budget and the test LL tracked at every evaluation. Runs go one at a time (timing)."""
    out: dict[str, object] = {}
    longest = max(plan.budgets_s)
    for dim in plan.budget_dims:
        log(f"budget D = {dim}")
        options = (("dim", dim), ("depth", 2), ("n_train", plan.budget_n_train))
        per_method: dict[str, list[RunResult]] = {}
        for method in plan.budget_methods:
            template = RunSpec(
                "teacher",
                method,
                plan.seeds[0],
                options,
                epochs=10**6,
                patience=None,
                time_budget_s=longest,
                track_test=True,
                threads=plan.threads,
                device=plan.device,
            )
            steps = _steps_between_evals(template, plan)
            seeds = plan.seeds[: plan.budget_seeds]
            per_method[method] = run_all(paired_specs(template, seeds, steps_per_epoch=steps), 1, log)
        table = {
            method: {f"{b:g}s": [ll_within_budget(r, b) for r in results] for b in plan.budgets_s}
            for method, results in per_method.items()
        }
        out[f"D={dim}"] = {
            "budgets_s": list(plan.budgets_s),
            "ll_within_budget": table,
            "true_test_ll": per_method[plan.budget_methods[0]][0].true_test_ll,
            "steps": {m: [r.steps for r in rs] for m, rs in per_method.items()},
            "runs": [r.as_dict() for rs in per_method.values() for r in rs],
        }
    return out


# --- reporting ---
def _fmt(value: object, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) and math.isfinite(value) else "–"


def markdown_summary(results: dict[str, object]) -> str:
    """The tables a reader needs: per comparison the mean test LL of each method and the paired difference."""
    header = [
        "comparison",
        "relative test LL",
        "ordinary test LL",
        "Δ (rel − ord) ± SE",
        "rel wins",
        "best epoch rel/ord",
        "diverged rel/ord",
    ]
    rows: list[list[object]] = []

    def add(summary: dict) -> None:
        test = summary.get("test")
        epochs, div = summary["median_best_epoch"], summary["n_diverged"]
        rows.append(
            [
                summary["label"],
                _fmt(test["mean_a"]) if test else "–",
                _fmt(test["mean_b"]) if test else "–",
                f"{test['diff']:+.2f} ± {_fmt(test['se'])}" if test else "–",
                f"{test['wins_a']}/{test['n']}" if test else "–",
                f"{epochs['candidate']:.0f}/{epochs['baseline']:.0f}",
                f"{div['candidate']}/{div['baseline']}",
            ]
        )

    sections = results["sections"]
    for per_alpha in sections.get("digits", {}).values():
        for summary in per_alpha["comparisons"].values():
            add(summary)
        add(per_alpha["tuned"])
    lines = []
    if rows:
        lines += ["### digits (logit space, nats; higher is better)", markdown_table(header, rows)]
    p_rows = []
    for key, per_alpha in sections.get("digits", {}).items():
        runs = per_alpha["plateau"]["runs"]
        if not runs:
            continue

        def med(field: str, index: int | None = None, runs: list = runs) -> str:
            values = [r[field] if index is None else r[field][index] for r in runs]
            values = [v for v in values if v is not None]
            return _fmt(float(statistics.median(values))) if values else "–"

        gain = per_alpha["plateau"].get("continuation_gain")
        p_rows.append(
            [
                key,
                med("stopped_val_ll"),
                " / ".join(med("grad_norm_ordinary", i) for i in range(len(runs[0]["parameters"]))),
                " / ".join(med("grad_norm_relative", i) for i in range(len(runs[0]["parameters"]))),
                " / ".join(med("condition_numbers", i) for i in range(len(runs[0]["condition_numbers"]))),
                med("continued_relative_val_ll"),
                med("continued_ordinary_val_ll"),
                f"{gain['diff']:+.2f} ± {_fmt(gain['se'])}" if gain else "–",
            ]
        )
    if p_rows:
        params = " / ".join(
            sections["digits"][next(iter(sections["digits"]))]["plateau"]["runs"][0]["parameters"]
        )
        lines += [
            f"### where the reference relative run stops (medians over seeds; norms per {params})",
            markdown_table(
                [
                    "digits",
                    "stopped val LL",
                    "‖Euclidean grad‖",
                    "‖relative dir‖",
                    "cond(W)",
                    "val LL, relative continued",
                    "val LL, ordinary continued",
                    "gain ord − rel ± SE",
                ],
                p_rows,
            ),
        ]
    teacher = sections.get("teacher", {})
    if teacher:
        t_rows = []
        for key, block in teacher.items():
            s = block["comparison"]
            test, kl = s.get("test"), s.get("kl_gap", {})
            t_rows.append(
                [
                    key,
                    _fmt(s.get("true_test_ll")),
                    _fmt(test["mean_a"]) if test else "–",
                    _fmt(test["mean_b"]) if test else "–",
                    _fmt(kl.get("candidate")),
                    _fmt(kl.get("baseline")),
                    f"{test['diff']:+.3f} ± {_fmt(test['se'], 3)}" if test else "–",
                ]
            )
        lines += [
            "### teacher (depth 2)",
            markdown_table(
                [
                    "D",
                    "true test LL",
                    "relative",
                    "ordinary",
                    "KL gap rel",
                    "KL gap ord",
                    "Δ (rel − ord) ± SE",
                ],
                t_rows,
            ),
        ]
    budget = sections.get("budget", {})
    if budget:
        b_rows = []
        for key, block in budget.items():
            for method, by_budget in block["ll_within_budget"].items():
                for budget_key, entries in by_budget.items():
                    lls = [e["test_ll"] for e in entries if e["test_ll"] is not None]
                    b_rows.append(
                        [
                            key,
                            method,
                            budget_key,
                            _fmt(statistics.median(lls)) if lls else "–",
                            _fmt(block["true_test_ll"]),
                            int(statistics.median(block["steps"][method])),
                        ]
                    )
        lines += [
            "### test LL within a training-time budget (median over seeds; time-dependent)",
            markdown_table(["D", "method", "budget", "test LL", "true test LL", "steps (full run)"], b_rows),
        ]
    return "\n\n".join(lines)


# --- command line ---
def _parse_sections(text: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in names if s not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown section(s) {unknown or text!r}; choose from {', '.join(SECTIONS)}"
        )
    return names


def _parse_floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from err
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke version of every section")
    parser.add_argument("--sections", type=_parse_sections, default=SECTIONS, help="comma-separated subset")
    parser.add_argument(
        "--seeds",
        type=_positive_int,
        default=None,
        help="number of paired seeds 0..N-1 (default 5, --quick 2)",
    )
    parser.add_argument("--threads", type=_positive_int, default=1, help="torch threads per run")
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="parallel processes for the untimed sections (the budget section runs serially)",
    )
    parser.add_argument(
        "--alphas", type=_parse_floats, default=None, help="digits α values (default 0.3,0.01)"
    )
    parser.add_argument(
        "--budgets", type=_parse_floats, default=None, help="training seconds (default 10,30)"
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON path (default benchmarks/results/quality-<date>.json)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    args = build_parser().parse_args(argv)
    device = str(resolve_device(args.device))
    torch.set_num_threads(args.threads)
    plan = (
        quick_plan(args.threads, device)
        if args.quick
        else Plan(seeds=tuple(range(5)), threads=args.threads, device=device)
    )
    if args.seeds:
        plan = replace(plan, seeds=tuple(range(args.seeds)))
    if args.alphas:
        plan = replace(plan, alphas=args.alphas)
    if args.budgets:
        plan = replace(plan, budgets_s=args.budgets)
    out_path = args.out or Path("benchmarks/results") / f"quality-{_dt.date.today().isoformat()}.json"

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    runners = {"digits": digits_section, "teacher": teacher_section, "budget": budget_section}
    results: dict[str, object] = {
        "machine": machine_info(torch.device(device)) | {"workers": args.workers, "quick": args.quick},
        "plan": asdict(plan),
        "sections": {},
    }
    for name in args.sections:
        results["sections"][name] = runners[name](plan, args.workers, log)
        write_json(out_path, results)  # after every section, so a long run leaves partial results
    results["markdown"] = markdown_summary(results)
    write_json(out_path, results)
    print(results["markdown"])
    print(f"\nwritten to {out_path}")
    return results


if __name__ == "__main__":
    main()
