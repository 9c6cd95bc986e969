"""Maximum-likelihood training with any gradient method, early stopping and divergence detection."""

from __future__ import annotations

import copy
import itertools
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from relgrad_core.checks import check_positive_int, check_positive_number
from relgrad_core.data.dataset import Dataset
from relgrad_core.device import synchronize
from relgrad_core.flow import Flow
from relgrad_core.methods import MethodSpec, check_method
from relgrad_core.optim import LayerAdam

if TYPE_CHECKING:
    from tqdm.auto import tqdm

OPTIMIZERS = ("adam", "adamw", "layer_adam", "sgd", "rmsprop")
#: A loss or validation NLL above this many nats per sample and dimension is taken as divergence: no
#: density a flow can learn from standardised data is that far off (the −1.3e26 a huge learning rate
#: reaches is finite but meaningless).
ABSURD_NLL_PER_DIM = 1e6
#: Suffix of a ``History.stopped_reason`` whose cap (epochs, max_steps, time_budget) cut a run that was
#: still improving: the fit had not converged, so its likelihood is not the method's optimum.
STILL_IMPROVING = " (still improving)"
#: ``History.stopped_reason`` values: what ended a run.
STOP_REASONS: tuple[str, ...] = (
    "patience",
    "time_budget",
    "time_budget" + STILL_IMPROVING,
    "max_steps",
    "max_steps" + STILL_IMPROVING,
    "epochs",
    "epochs" + STILL_IMPROVING,
    "callback",
)


class Diverged(RuntimeError):
    """Training produced a non-finite or absurd loss, gradient or validation NLL; the flow is back at its
    best finite weights (the best validated epoch, or the initial weights).

    Attributes: ``step`` (1-based global step at which it happened), ``epoch``, ``method``.
    """

    def __init__(self, message: str, *, step: int, epoch: int, method: str) -> None:
        super().__init__(message)
        self.step = step
        self.epoch = epoch
        self.method = method


@dataclass
class EpochRecord:
    """One evaluation point of a run.

    ``train_nll`` and ``val_nll`` are exact NLLs (data term + log-det, nats per sample) of the weights at
    this evaluation, on the training rows of ``fit``'s ``train_eval_size`` and on the validation split,
    so the two compare (over-fitting shows as a widening gap). ``train_data_nll`` is the mean *data-term*
    NLL over the epoch's batches, i.e. what the gradient saw (the log-det term is not computed during
    relative training, by design): it is not a likelihood.
    """

    epoch: int
    step: int
    train_nll: float
    val_nll: float
    train_data_nll: float
    sec_per_iter: float
    train_time_s: float

    @property
    def train_ll(self) -> float:
        return -self.train_nll

    @property
    def val_ll(self) -> float:
        return -self.val_nll


@dataclass
class History:
    """What :func:`fit` returns: the per-epoch records and how the run ended.

    ``stopped_reason`` is one of :data:`STOP_REASONS`: ``"patience"`` (no better validation NLL for
    ``patience`` epochs: the optimum was reached), ``"time_budget"``, ``"max_steps"``, ``"callback"``,
    ``"epochs"`` (the epoch cap, after the validation NLL had stopped improving) or
    ``"epochs (still improving)"`` (the epoch cap cut a run that was still improving: not converged).
    """

    method: str
    records: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    best_val_nll: float = math.inf
    stopped_reason: str = "epochs"

    @property
    def steps(self) -> int:
        return self.records[-1].step if self.records else 0

    def as_dicts(self) -> list[dict[str, float]]:
        return [asdict(r) | {"train_ll": r.train_ll, "val_ll": r.val_ll} for r in self.records]


def evaluate_nll(flow: Flow, x: torch.Tensor, batch_size: int = 1024) -> float:
    """Exact mean NLL of ``x`` (nats per sample), batched; the log-det term comes from the cache.

    ``x`` is checked once (:meth:`Flow.check_input`), then its batches go through the unchecked
    ``data_log_prob``.
    """
    x = flow.check_input(x)
    check_positive_int("batch_size", batch_size)
    return _exact_nll(flow, x, batch_size)


def _exact_nll(flow: Flow, x: torch.Tensor, batch_size: int) -> float:
    """:func:`evaluate_nll` on input already checked and cast to the flow."""
    total = torch.zeros((), dtype=torch.float64, device=flow.device)
    with torch.no_grad():
        log_det = flow.cached_weight_log_abs_det()
        for start in range(0, x.shape[0], batch_size):
            batch = x[start : start + batch_size]
            total += (flow.data_log_prob(batch) + log_det).sum(dtype=torch.float64)
    return -float(total) / x.shape[0]


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """Optimizer by name (:data:`OPTIMIZERS`).

    Adam/AdamW use torch's fused kernels where the installed torch has them for the parameters' device
    (CPU since torch 2.4; about 4× faster than ``foreach`` for 2 × 4096² parameters on 2 CPU cores),
    else the ``foreach`` implementation. Every method gets the same optimizer, so comparisons stay fair.
    """
    params = list(params)
    if name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        try:
            return cls(params, lr=lr, fused=True)
        except (RuntimeError, ValueError):
            return cls(params, lr=lr, foreach=True)
    if name == "layer_adam":
        return LayerAdam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def _splits(flow: Flow, data: object) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train, val)`` from a :class:`Dataset` or a pair of tensors/arrays, checked and cast to the flow."""
    if isinstance(data, Dataset):
        pair = (data.train, data.val)
    elif isinstance(data, tuple | list) and len(data) == 2:
        pair = tuple(torch.as_tensor(x) if isinstance(x, np.ndarray) else x for x in data)
        for split, value in zip(("train", "val"), pair, strict=True):
            if not isinstance(value, torch.Tensor):
                raise TypeError(
                    f"{split} split must be a torch.Tensor or a numpy array, got {type(value).__name__}"
                )
    else:
        raise TypeError(
            "data must be a Dataset or a (train, val) pair of tensors or numpy arrays, got "
            f"{type(data).__name__}" + (f" of length {len(data)}" if isinstance(data, tuple | list) else "")
        )
    return flow.check_input(pair[0], "train split"), flow.check_input(pair[1], "val split")


def train_eval_rows(train: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """The training rows the exact train NLL is evaluated on: all of them when ``size`` covers the split,
    else a fixed random subset of ``size`` rows (its own generator: the batch order does not change)."""
    if size >= len(train):
        return train
    generator = torch.Generator().manual_seed(seed + 1)
    return train[torch.randperm(len(train), generator=generator)[:size].to(train.device)]


def _batches(
    n: int, batch_size: int, generator: torch.Generator, steps_per_epoch: int | None
) -> Iterator[Iterator[torch.Tensor]]:
    """Per epoch, index batches of a reshuffled permutation; with ``steps_per_epoch``, epochs of that many
    steps drawn from a continuing stream of permutations."""

    def stream() -> Iterator[torch.Tensor]:
        while True:
            perm = torch.randperm(n, generator=generator)
            yield from perm.split(batch_size)

    if steps_per_epoch is None:
        while True:
            yield iter(torch.randperm(n, generator=generator).split(batch_size))
    else:
        source = stream()
        while True:
            yield (next(source) for _ in range(steps_per_epoch))


def fit(
    flow: Flow,
    data: Dataset | tuple[torch.Tensor | np.ndarray, torch.Tensor | np.ndarray],
    *,
    method: str,
    lr: float = 1e-3,
    batch_size: int = 100,
    epochs: int | None = None,
    patience: int | None = 30,
    optimizer: str = "adam",
    callback: Callable[[EpochRecord], bool | None] | None = None,
    steps_per_epoch: int | None = None,
    max_steps: int | None = None,
    time_budget_s: float | None = None,
    seed: int = 0,
    eval_batch_size: int = 1024,
    train_eval_size: int | None = None,
    progress: bool = False,
) -> History:
    """Train ``flow`` by maximum likelihood with gradient ``method`` and evaluate the exact val NLL per epoch.

    By default (``epochs=None``) the run goes on until ``patience`` epochs pass without a better validation
    NLL, i.e. until it reaches its optimum, or until ``max_steps``/``time_budget_s``. Everything is validated
    once before the first step; the steps themselves run unchecked. How the run ended is
    ``History.stopped_reason`` (see :class:`History`); an epoch cap that cuts a still-improving run also
    warns.

    Args:
        data: a :class:`Dataset` or a ``(train, val)`` pair of tensors or numpy arrays (cast to the flow's
            dtype and device).
        epochs: cap on the number of epochs (None: no cap).
        patience: stop after this many epochs without a better validation NLL (None: never); the best
            weights are restored at the end either way.
        callback: called with each :class:`EpochRecord`; returning True stops training.
        steps_per_epoch: evaluate every this many steps instead of once per pass over the data.
        max_steps, time_budget_s: further stopping rules (training seconds, evaluation excluded).
        train_eval_size: rows of the training split on which each evaluation also computes the exact
            train NLL (``EpochRecord.train_nll``): a fixed random subset drawn once, all rows when the
            split is no larger. None: as many rows as the validation split, so that evaluating train
            costs what evaluating validation does.

    Raises:
        ValueError/TypeError: bad arguments or data, or no stopping rule at all, detected before any step.
        SingularWeightError: a weight matrix is singular before training.
        Diverged: a non-finite or absurd (|NLL| > :data:`ABSURD_NLL_PER_DIM` · D per sample) loss or
            validation NLL, or non-finite weights (where a non-finite gradient ends up); the flow is
            restored to its best finite weights.
    """
    spec = check_method(flow, method)
    train, val = _splits(flow, data)
    stopping = _Stopping(epochs, patience, max_steps, time_budget_s)
    _check_fit_arguments(
        lr, batch_size, stopping, steps_per_epoch, eval_batch_size, train_eval_size, optimizer
    )
    flow.check_invertible()
    train_eval = train_eval_rows(train, train_eval_size or len(val), seed)

    run = _Run(flow, method, make_optimizer(optimizer, list(flow.parameters()), lr))
    history = run.history
    batches = _batches(len(train), batch_size, torch.Generator().manual_seed(seed), steps_per_epoch)
    bar = _progress_bar(epochs, f"{method} D={flow.dim}") if progress else None
    epoch_numbers = range(1, epochs + 1) if epochs is not None else itertools.count(1)
    try:
        for epoch, batch_indices in zip(epoch_numbers, batches, strict=False):
            loss_sum, steps, elapsed = run.train_epoch(
                epoch, (train[i] for i in batch_indices), spec, stopping
            )
            record = run.evaluate(epoch, val, train_eval, eval_batch_size, loss_sum, steps, elapsed)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(train_ll=f"{record.train_ll:.3f}", val_ll=f"{record.val_ll:.3f}")
            if callback is not None and callback(record):
                history.stopped_reason = "callback"
                break
            if (reason := stopping.reason_after(run)) is not None:
                history.stopped_reason = reason
                break
        else:
            history.stopped_reason = _cap_reason(history, patience, "epochs")
    finally:
        if bar is not None:
            bar.close()
    flow.load_state_dict(run.best_state)
    return history


def _check_fit_arguments(
    lr: float,
    batch_size: int,
    stopping: _Stopping,
    steps_per_epoch: int | None,
    eval_batch_size: int,
    train_eval_size: int | None,
    optimizer: str,
) -> None:
    """Every number and name :func:`fit` takes, and that some rule stops it; raise naming the first bad
    one."""
    check_positive_number("learning rate", lr)
    check_positive_int("batch_size", batch_size)
    check_positive_int("epochs", stopping.epochs, allow_none=True)
    check_positive_int("patience", stopping.patience, allow_none=True)
    check_positive_int("steps_per_epoch", steps_per_epoch, allow_none=True)
    check_positive_int("max_steps", stopping.max_steps, allow_none=True)
    check_positive_int("eval_batch_size", eval_batch_size)
    check_positive_int("train_eval_size", train_eval_size, allow_none=True)
    check_positive_number("time_budget_s", stopping.time_budget_s, allow_none=True)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    if all(
        rule is None
        for rule in (stopping.epochs, stopping.patience, stopping.max_steps, stopping.time_budget_s)
    ):
        raise ValueError(
            "fit would never stop: epochs=None and patience=None with no max_steps or time_budget_s; "
            "set one of them"
        )


def _progress_bar(epochs: int | None, desc: str) -> tqdm:
    """A bar that counts epochs (of ``epochs``, when capped)."""
    from tqdm.auto import tqdm  # optional dependency, only for interactive runs

    return tqdm(total=epochs, desc=desc, unit="epoch")


class _Run:
    """What :func:`fit` carries from step to step: the step count, the training seconds, the best weights
    so far (restored on divergence and at the end) and the epochs since they were found."""

    def __init__(self, flow: Flow, method: str, optimizer: torch.optim.Optimizer) -> None:
        self.flow, self.method, self.optimizer = flow, method, optimizer
        self.history = History(method=method)
        self.best_state = copy.deepcopy(flow.state_dict())
        self.epochs_since_best = 0
        self.step = 0
        self.train_time = 0.0
        self.absurd = ABSURD_NLL_PER_DIM * flow.dim

    def diverged(self, epoch: int, what: str) -> Diverged:
        return _diverged(
            self.flow, self.best_state, self.history.best_epoch, self.step, epoch, self.method, what
        )

    def train_epoch(
        self, epoch: int, batches: Iterator[torch.Tensor], spec: MethodSpec, stopping: _Stopping
    ) -> tuple[float, int, float]:
        """One epoch's steps: ``(sum of the losses, steps, seconds)``; a step or time cap ends it early."""
        loss_sum, steps = 0.0, 0
        synchronize(self.flow.device)
        started = time.perf_counter()
        for batch in batches:
            loss_value = float(spec.apply(self.flow, batch))  # the step's one host sync
            self.step += 1
            # A non-finite gradient is not checked here (a pass over every gradient costs ~5% of a
            # step): the optimizer spreads it into the weights, which the next loss or the epoch's
            # weight check in evaluate catches, and the best weights are restored either way.
            if not math.isfinite(loss_value) or abs(loss_value) > self.absurd:
                raise self.diverged(epoch, f"loss {loss_value:.4g}")
            self.optimizer.step()
            loss_sum += loss_value
            steps += 1
            if stopping.caps_reached(self.step, self.train_time + time.perf_counter() - started):
                break
        synchronize(self.flow.device)
        elapsed = time.perf_counter() - started
        self.train_time += elapsed
        return loss_sum, steps, elapsed

    def evaluate(
        self,
        epoch: int,
        val: torch.Tensor,
        train_eval: torch.Tensor,
        eval_batch_size: int,
        loss_sum: float,
        steps: int,
        elapsed: float,
    ) -> EpochRecord:
        """The epoch's record (weights and validation NLL checked for divergence), kept in the history;
        the best weights move to this epoch's when its validation NLL is the best so far."""
        if not all(bool(torch.isfinite(p).all()) for p in self.flow.parameters()):
            raise self.diverged(epoch, "weights (NaN or inf entries)")
        val_nll = evaluate_nll(self.flow, val, eval_batch_size)
        if not math.isfinite(val_nll) or abs(val_nll) > self.absurd:
            raise self.diverged(epoch, f"validation NLL {val_nll:.4g}")
        record = EpochRecord(
            epoch=epoch,
            step=self.step,
            train_nll=_exact_nll(self.flow, train_eval, eval_batch_size),  # log-det cached: no extra O(D³)
            val_nll=val_nll,
            train_data_nll=loss_sum / max(steps, 1),
            sec_per_iter=elapsed / max(steps, 1),
            train_time_s=self.train_time,
        )
        self.history.records.append(record)
        if val_nll < self.history.best_val_nll:
            self.history.best_val_nll, self.history.best_epoch = val_nll, epoch
            self.best_state = copy.deepcopy(self.flow.state_dict())
            self.epochs_since_best = 0
        else:
            self.epochs_since_best += 1
        return record


@dataclass(frozen=True)
class _Stopping:
    """:func:`fit`'s stopping rules (None: not used). The epoch cap is the loop's own length."""

    epochs: int | None
    patience: int | None
    max_steps: int | None
    time_budget_s: float | None

    def caps_reached(self, step: int, train_time: float) -> bool:
        """Whether the step or time budget is spent (checked after every step, and after each epoch)."""
        return (self.max_steps is not None and step >= self.max_steps) or (
            self.time_budget_s is not None and train_time >= self.time_budget_s
        )

    def reason_after(self, run: _Run) -> str | None:
        """After an evaluation: why the run stops now (a :data:`STOP_REASONS` value), or None to go on."""
        if self.patience is not None and run.epochs_since_best >= self.patience:
            return "patience"
        if self.max_steps is not None and run.step >= self.max_steps:
            return _cap_reason(run.history, self.patience, "max_steps")
        if self.time_budget_s is not None and run.train_time >= self.time_budget_s:
            return _cap_reason(run.history, self.patience, "time_budget")
        return None


def _cap_reason(history: History, patience: int | None, cap: str) -> str:
    """``cap``, or ``cap + STILL_IMPROVING`` when the validation NLL improved within the last ``patience``
    epochs (the last epoch when patience is None): the run had not converged. The epoch cap also warns
    (a user who set a step or time budget asked for a bounded run)."""
    window = patience if patience is not None else 1
    last = history.records[-1].epoch if history.records else 0
    if last - history.best_epoch >= window:
        return cap
    if cap == "epochs":
        warnings.warn(
            f"fit stopped at the epoch cap ({last}) while the validation NLL was still improving (best at "
            f"epoch {history.best_epoch}): the run has not converged; use epochs=None to train until "
            "patience",
            stacklevel=3,
        )
    return cap + STILL_IMPROVING


def _diverged(
    flow: Flow, best_state: dict, best_epoch: int, step: int, epoch: int, method: str, what: str
) -> Diverged:
    """Restore the best finite weights and build the error saying what happened and what was kept."""
    flow.load_state_dict(best_state)
    kept = f"the best weights (epoch {best_epoch})" if best_epoch else "the initial weights"
    return Diverged(
        f"training diverged at step {step} (epoch {epoch}, method {method!r}): non-finite or absurd {what}; "
        f"the flow is back at {kept}. Try a smaller learning rate.",
        step=step,
        epoch=epoch,
        method=method,
    )
