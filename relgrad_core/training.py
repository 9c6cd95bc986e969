"""Maximum-likelihood training with any gradient method, early stopping and divergence detection."""

from __future__ import annotations

import copy
import itertools
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from relgrad_core.checks import check_positive_int, check_positive_number
from relgrad_core.data.dataset import Dataset
from relgrad_core.device import synchronize
from relgrad_core.flow import Flow
from relgrad_core.methods import check_method
from relgrad_core.optim import LayerAdam

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
    check_positive_number("learning rate", lr)
    check_positive_int("batch_size", batch_size)
    check_positive_int("epochs", epochs, allow_none=True)
    check_positive_int("patience", patience, allow_none=True)
    check_positive_int("steps_per_epoch", steps_per_epoch, allow_none=True)
    check_positive_int("max_steps", max_steps, allow_none=True)
    check_positive_int("eval_batch_size", eval_batch_size)
    check_positive_int("train_eval_size", train_eval_size, allow_none=True)
    check_positive_number("time_budget_s", time_budget_s, allow_none=True)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    if epochs is None and patience is None and max_steps is None and time_budget_s is None:
        raise ValueError(
            "fit would never stop: epochs=None and patience=None with no max_steps or time_budget_s; "
            "set one of them"
        )
    flow.check_invertible()
    train_eval = train_eval_rows(train, train_eval_size or len(val), seed)

    device = flow.device
    absurd = ABSURD_NLL_PER_DIM * flow.dim
    params = list(flow.parameters())
    opt = make_optimizer(optimizer, params, lr)
    generator = torch.Generator().manual_seed(seed)
    history = History(method=method)
    best_state = copy.deepcopy(flow.state_dict())
    epochs_since_best = 0
    step = 0
    train_time = 0.0
    bar = None
    if progress:
        from tqdm.auto import tqdm  # optional dependency, only for interactive runs

        bar = tqdm(total=epochs, desc=f"{method} D={flow.dim}", unit="epoch")

    def diverged(epoch: int, what: str) -> Diverged:
        return _diverged(flow, best_state, history.best_epoch, step, epoch, method, what)

    epoch_numbers = range(1, epochs + 1) if epochs is not None else itertools.count(1)
    try:
        for epoch, batch_indices in zip(
            epoch_numbers, _batches(len(train), batch_size, generator, steps_per_epoch), strict=False
        ):
            epoch_loss, epoch_steps = 0.0, 0
            synchronize(device)
            started = time.perf_counter()
            for index in batch_indices:
                loss_value = float(spec.apply(flow, train[index]))  # the step's one host sync
                step += 1
                # A non-finite gradient is not checked here (a pass over every gradient costs ~5% of a
                # step): the optimizer spreads it into the weights, which the next loss or the epoch's
                # weight check below catches, and the best weights are restored either way.
                if not math.isfinite(loss_value) or abs(loss_value) > absurd:
                    raise diverged(epoch, f"loss {loss_value:.4g}")
                opt.step()
                epoch_loss += loss_value
                epoch_steps += 1
                if max_steps is not None and step >= max_steps:
                    break
                if time_budget_s is not None and train_time + time.perf_counter() - started >= time_budget_s:
                    break
            synchronize(device)
            elapsed = time.perf_counter() - started
            train_time += elapsed
            if not all(bool(torch.isfinite(p).all()) for p in params):
                raise diverged(epoch, "weights (NaN or inf entries)")
            val_nll = evaluate_nll(flow, val, eval_batch_size)
            if not math.isfinite(val_nll) or abs(val_nll) > absurd:
                raise diverged(epoch, f"validation NLL {val_nll:.4g}")
            record = EpochRecord(
                epoch=epoch,
                step=step,
                train_nll=_exact_nll(flow, train_eval, eval_batch_size),  # log-det cached: no extra O(D³)
                val_nll=val_nll,
                train_data_nll=epoch_loss / max(epoch_steps, 1),
                sec_per_iter=elapsed / max(epoch_steps, 1),
                train_time_s=train_time,
            )
            history.records.append(record)
            if val_nll < history.best_val_nll:
                history.best_val_nll, history.best_epoch = val_nll, epoch
                best_state = copy.deepcopy(flow.state_dict())
                epochs_since_best = 0
            else:
                epochs_since_best += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(train_ll=f"{record.train_ll:.3f}", val_ll=f"{record.val_ll:.3f}")
            if callback is not None and callback(record):
                history.stopped_reason = "callback"
                break
            if patience is not None and epochs_since_best >= patience:
                history.stopped_reason = "patience"
                break
            if max_steps is not None and step >= max_steps:
                history.stopped_reason = _cap_reason(history, patience, "max_steps")
                break
            if time_budget_s is not None and train_time >= time_budget_s:
                history.stopped_reason = _cap_reason(history, patience, "time_budget")
                break
        else:
            history.stopped_reason = _cap_reason(history, patience, "epochs")
    finally:
        if bar is not None:
            bar.close()
    flow.load_state_dict(best_state)
    return history


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
