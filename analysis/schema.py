"""Names from the MLflow contract that the `study` package writes, and derived constants."""

from __future__ import annotations

#: Methods in display order; the first is the one every speedup is measured against.
METHOD_ORDER: tuple[str, ...] = ("relative", "ordinary", "autodiff", "jacobian", "lu", "mlp")
REFERENCE_METHOD = "relative"
#: The plain MLP (no log-det term): the cost floor that the relative gradient is compared with.
FLOOR_METHOD = "mlp"
#: Relative-gradient step / MLP step in matrix FLOPs for deep flows: per hidden layer an MLP does three
#: B×D by D×D products (forward, input gradient, weight gradient), the relative gradient four.
FLOP_FLOOR_RATIO = 4.0 / 3.0


def flop_ratio(depth: int, gaussian_base: bool = True) -> float:
    """Matrix-FLOP ratio relative/mlp of relgrad_core's gradients at ``depth`` (units of B·D²).

    MLP: forward 2 per layer, weight gradient 2 per layer, input gradient 2 on all but the first layer.
    Relative: forward 2, ``yW`` and ``δᵀ(yW)`` 4 per layer, input gradient 2 on hidden layers but the first;
    with a Gaussian base the last layer's input gradient comes free (``δ = y/B``). So 12/10 at depth 2,
    and → 4/3 as the depth grows.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    mlp = 4 * depth + 2 * (depth - 1)
    relative = 6 * depth + 2 * max(depth - 2, 0) + (0 if gaussian_base or depth == 1 else 2)
    return relative / mlp


STATUS_OK = "ok"
STATUSES: tuple[str, ...] = ("ok", "diverged", "skipped_over_budget", "failed")

INT_PARAMS: tuple[str, ...] = ("dim", "depth", "batch_size", "seed")
FLOAT_PARAMS: tuple[str, ...] = ("lr", "alpha")
STR_PARAMS: tuple[str, ...] = ("method", "dataset", "device", "dtype")
TAG_COLUMNS: tuple[str, ...] = (
    "status",
    "status_reason",
    "device_name",
    "torch_version",
    "cuda_version",
    "cpu_model",
    "host",
    "node_id",
    "git_commit",
    "trial_id",
)
#: Metrics read as their final value per run (MLflow keeps the value at the largest step).
METRICS: tuple[str, ...] = (
    "sec_per_iter",
    "sec_per_iter_min",
    "sec_per_iter_iqr",
    "peak_mem_mb",
    "train_nll",
    "val_ll",
    "train_time_s",
    "test_ll",
    "true_test_ll",
)
#: Metrics logged against the training step; their whole history is loaded for the learning views.
HISTORY_METRICS: tuple[str, ...] = ("val_ll", "train_nll", "train_time_s")

#: Metric that every `ok` trial of a sweep of this kind must carry.
REQUIRED_METRIC: dict[str, str] = {"scaling": "sec_per_iter", "hpo": "val_ll"}


def method_sort_key(method: str) -> tuple[int, str]:
    """Sort key putting known methods in :data:`METHOD_ORDER` and unknown ones after, by name."""
    if method in METHOD_ORDER:
        return (METHOD_ORDER.index(method), method)
    return (len(METHOD_ORDER), method)
