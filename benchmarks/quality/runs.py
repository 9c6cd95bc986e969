"""One training run (a picklable :class:`RunSpec` → :class:`RunResult`) and the loop over many.

A run trains with early stopping on the exact validation LL (``patience`` epochs), keeps the best
validation weights, and evaluates them on test. Every LL is reported in the data set's reported space
(``Dataset.reported_ll``: logit space for digits, the raw features for the scikit-learn table, the
samples' space for the teacher) next to the Gaussian yardstick of the same split, so ``gain`` is
"nats per sample over a full-covariance Gaussian fitted on train".
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from multiprocessing import get_context

import torch

from benchmarks.quality.variants import ensure_registered, fold_standardization
from relgrad_core import (
    DATASETS,
    Dataset,
    Diverged,
    evaluate_nll,
    fit,
    gaussian_test_ll,
    load_dataset,
    make_flow,
    register_dataset,
)
from relgrad_core.training import EpochRecord

TABLE = "breast_cancer"  # scikit-learn's bundled Wisconsin breast-cancer table: 569 × 30, no download
INITS = ("orthogonal", "fold")  # fold: raw data, standardisation folded into the first layer


def load_breast_cancer(*, seed: int = 0, standardize: bool = True) -> Dataset:
    """The 30 features of scikit-learn's breast-cancer table, split 70/15/15 by ``seed``."""
    from sklearn.datasets import load_breast_cancer as sklearn_table

    return Dataset.from_arrays(sklearn_table().data, seed=seed, standardize=standardize, name=TABLE)


def _register_table() -> None:
    if TABLE not in DATASETS:  # once per process
        register_dataset(TABLE, load_breast_cancer, summary="scikit-learn breast cancer, 30-D")


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines one run. ``init="fold"`` trains on the *unstandardised* set with the
    standardisation folded into the first layer (same function at step 0)."""

    dataset: str
    method: str
    seed: int
    alpha: float = 0.3
    lr: float = 1e-3
    optimizer: str = "adam"
    batch_size: int = 64
    depth: int = 2
    patience: int = 50
    max_epochs: int = 5000  # a safety net far above where patience stops; a cut run is flagged
    init: str = "orthogonal"
    data_options: tuple[tuple[str, object], ...] = ()
    threads: int = 1

    def label(self) -> str:
        extra = "" if self.init == "orthogonal" else f" init={self.init}"
        return f"{self.dataset} {self.method} {self.optimizer} lr={self.lr:g} α={self.alpha:g}{extra}"


@dataclass
class RunResult:
    """Test/val LL (reported space) of the best-validation weights, the Gaussian yardstick, how it ended."""

    spec: RunSpec
    test_ll: float
    val_ll: float
    gaussian_test_ll: float
    best_epoch: int
    epochs_run: int
    train_time_s: float
    stopped_reason: str
    diverged: bool = False
    true_test_ll: float | None = None
    cap_cut: bool = False  # stopped by max_epochs while still improving within the patience window
    history: list[float] = field(default_factory=list)  # validation LL per epoch (reported space)

    @property
    def gain(self) -> float:
        """Nats per sample over the Gaussian (NaN if diverged)."""
        return self.test_ll - self.gaussian_test_ll

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out.pop("history")
        out["spec"] = asdict(self.spec) | {"data_options": dict(self.spec.data_options)}
        out["gain"] = self.gain
        return out


@lru_cache(maxsize=4)
def load(name: str, seed: int, standardize: bool, options: tuple[tuple[str, object], ...]) -> Dataset:
    """The data set of a run (cached per worker: the five seeds of one setting reuse it)."""
    if name == TABLE:
        _register_table()
    kwargs = dict(options)
    if name in ("digits", TABLE):
        kwargs["standardize"] = standardize
    return load_dataset(name, seed=seed, **kwargs)


def run_one(spec: RunSpec) -> RunResult:
    """Train one flow as ``spec`` says; the best-validation weights are evaluated on test."""
    torch.set_num_threads(spec.threads)
    ensure_registered()
    if spec.init not in INITS:
        raise ValueError(f"unknown init {spec.init!r}; choose one of {', '.join(INITS)}")
    data = load(spec.dataset, spec.seed, spec.init != "fold", spec.data_options)
    flow = make_flow(spec.method, data.dim, spec.depth, alpha=spec.alpha, seed=spec.seed, device="cpu")
    if spec.init == "fold":
        fold_standardization(flow, data.train.mean(dim=0), data.train.std(dim=0, correction=0))
    gaussian = gaussian_test_ll(data)
    history: list[float] = []

    def record(entry: EpochRecord) -> None:
        history.append(data.reported_ll(entry.val_ll))

    started = time.perf_counter()
    try:
        result = fit(
            flow,
            data,
            method=spec.method,
            lr=spec.lr,
            batch_size=spec.batch_size,
            epochs=spec.max_epochs,
            patience=spec.patience,
            optimizer=spec.optimizer,
            seed=spec.seed,
            callback=record,
        )
    except Diverged as err:
        elapsed = time.perf_counter() - started
        nan = math.nan
        true = _true(data)
        return RunResult(spec, nan, nan, gaussian, 0, err.epoch, elapsed, "diverged", True, true, history)
    last = result.records[-1]
    cut = result.stopped_reason.startswith("epochs") and last.epoch - result.best_epoch < spec.patience
    return RunResult(
        spec=spec,
        test_ll=data.reported_ll(-evaluate_nll(flow, data.test)),
        val_ll=data.reported_ll(-result.best_val_nll),
        gaussian_test_ll=gaussian,
        best_epoch=result.best_epoch,
        epochs_run=last.epoch,
        train_time_s=last.train_time_s,
        stopped_reason=result.stopped_reason,
        true_test_ll=_true(data),
        cap_cut=cut,
        history=history,
    )


def _true(data: Dataset) -> float | None:
    return None if data.true_test_ll is None else data.reported_ll(data.true_test_ll)


def describe(r: RunResult) -> str:
    ll = "diverged" if r.diverged else f"test {r.test_ll:.2f} (gain {r.gain:+.2f})"
    return (
        f"{r.spec.label()} seed {r.spec.seed}: {ll}, best epoch {r.best_epoch}/{r.epochs_run} "
        f"({r.stopped_reason}{', CUT BY CAP' if r.cap_cut else ''}), {r.train_time_s:.1f} s"
    )


def run_all(specs: Sequence[RunSpec], workers: int, log: Callable[[str], None]) -> list[RunResult]:
    """Run ``specs`` (in ``workers`` spawned processes when > 1); results in the order of ``specs``."""
    if workers <= 1:
        results = []
        for spec in specs:
            results.append(run_one(spec))
            log(describe(results[-1]))
        return results
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        results = []
        for result in pool.map(run_one, specs):
            log(describe(result))
            results.append(result)
    return results
