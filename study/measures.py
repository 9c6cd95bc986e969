"""What a trial measures, each from a ``relgrad_core`` result as the schema's metrics: one step timed and
counted before training (:func:`measure_step`), the trained flow's held-out LLs and their yardsticks
(:func:`held_out_metrics`), and the matrix-multiply peak of the machine a sweep runs on
(:func:`matmul_peak_record`). Torch is imported inside each function: the driver imports this module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from analysis.schema import (
    PEAK_METRIC,
    TAG_DEVICE_NAME,
    TAG_MATMUL_PEAK_DEVICE,
    TAG_MATMUL_PEAK_SIZE,
    TAG_MATMUL_PEAK_THREADS,
)
from study import tracking
from study.config import TrainConfig

#: A run's metrics by their schema names.
Metrics = dict[str, float]


def measure_step(
    flow: Any, batch: Any, point: Mapping[str, Any], train: TrainConfig
) -> tuple[Metrics, tuple[str, ...]]:
    """One step of the point's method on ``batch``, timed and counted (weights restored after each):
    ``(metrics, the operations the count could not price)``."""
    from relgrad_core import flop_ratio, time_step
    from relgrad_core.counting import count_step

    # The step's cost does not depend on the learning rate; a fixed one keeps timing finite.
    timing = time_step(
        flow,
        batch,
        point["method"],
        warmup=train.timing_warmup,
        repeats=train.timing_repeats,
        optimizer=train.optimizer,
        lr=1e-3,
    )
    count = count_step(flow, batch, point["method"], optimizer=train.optimizer, warn=False)
    metrics: Metrics = {
        **timing_metrics(timing),
        **counted_metrics(count),
        "flop_ratio": flop_ratio(point["method"], int(point["depth"])),
    }
    return metrics, tuple(count.uncounted)


def held_out_metrics(flow: Any, dataset: Any) -> tuple[Metrics, str]:
    """The trained flow's test LL and what it is measured against (the data set's own space, the exact
    LL where known, the Gaussian yardstick), and why the yardstick is absent (``""`` when present)."""
    from relgrad_core import evaluate_nll

    test_ll = -evaluate_nll(flow, dataset.test.to(device=flow.device, dtype=flow.dtype))
    # test_ll, val_ll and the yardstick are on the tensors the flow sees; the data set quotes its LLs in
    # its own space (e.g. digits: logit space before standardisation), a constant ll_offset away
    metrics: Metrics = {
        "test_ll": test_ll,
        "ll_offset": dataset.ll_offset,
        "reported_test_ll": dataset.reported_ll(test_ll),
    }
    if dataset.true_test_ll is not None:
        metrics["true_test_ll"] = float(dataset.true_test_ll)
        metrics["kl_gap"] = float(dataset.true_test_ll) - test_ll
    yardstick, absent = gaussian_yardstick(dataset)
    if yardstick is not None:
        metrics["gaussian_test_ll"] = yardstick
        metrics["reported_gaussian_test_ll"] = dataset.reported_ll(yardstick)
        metrics["gain_over_gaussian"] = test_ll - yardstick
    return metrics, absent


#: Above this many multiply-adds (n_train·D²) the Gaussian yardstick is left out where the exact LL is
#: known: at D = 4096 on teacher data it would cost a CPU trial more than its whole training budget.
GAUSSIAN_YARDSTICK_MAX_MACS = 2e9


def gaussian_yardstick(dataset: Any) -> tuple[float | None, str]:
    """``(value, "")``: the test LL (on the tensors, like ``test_ll``) of a full-covariance Gaussian fitted
    on train; or ``(None, why)`` when there is none, ``why`` being recorded in the run's
    ``TAG_GAUSSIAN_ABSENT`` tag (the yardstick is never silently absent).

    Every data set without a known true LL gets it (its only yardstick); synthetic ones when cheap.
    It cannot be fitted when the training covariance is singular (e.g. fewer samples than dimensions).
    """
    from relgrad_core import gaussian_test_ll

    n, dim = dataset.train.shape
    if dataset.true_test_ll is not None and n * dim * dim > GAUSSIAN_YARDSTICK_MAX_MACS:
        return None, (
            f"not computed: its fit costs n_train·D² = {n * dim * dim:.3g} multiply-adds (over "
            f"{GAUSSIAN_YARDSTICK_MAX_MACS:g}) and the true test LL is known"
        )
    try:
        value = float(gaussian_test_ll(dataset, reported=False))
    except ValueError as exc:
        return None, f"cannot be fitted: {exc}"
    return (value, "") if math.isfinite(value) else (None, f"its test LL is not finite ({value})")


def timing_metrics(timing: Any) -> Metrics:
    """The schema's timing metrics of a ``relgrad_core.StepTiming`` (NaN: the OS gives no load average)."""
    return {
        "sec_per_iter": float(timing.median),
        "sec_per_iter_min": float(timing.min),
        "sec_per_iter_iqr": float(timing.iqr),
        "timing_repeats": float(timing.repeats),
        "timing_retimed": float(bool(timing.retimed)),
        "load_avg_1m": float(timing.load_avg_1m),
        "peak_mem_mb": timing.peak_mem_bytes / 2**20,
    }


def counted_metrics(count: Any) -> Metrics:
    """The schema's counted-work metrics of a ``relgrad_core.counting.StepCount``."""
    return {
        "flops_per_step": float(count.flops),
        "flops_cubic_per_step": float(count.flops_cubic),
        "bytes_per_step": float(count.bytes),
    }


def matmul_peak_record(
    device: str, dtype: str, size: int | None, cpus: float
) -> tuple[Metrics, dict[str, str]]:
    """Measure the matrix-multiply peak where a trial runs (its device, dtype and CPU threads): the parent
    run's metric and tags. Run as a Ray task with a trial's resources (see ``study.sweep``)."""
    import torch

    from relgrad_core.timing import matmul_peak

    torch.set_num_threads(max(1, int(cpus)))
    peak = matmul_peak(device, torch.float64 if dtype == "float64" else torch.float32, size=size)
    tags = {
        TAG_MATMUL_PEAK_SIZE: str(peak.size),
        TAG_MATMUL_PEAK_DEVICE: tracking.environment_tags(peak.device)[TAG_DEVICE_NAME],
        TAG_MATMUL_PEAK_THREADS: str(peak.threads),
    }
    return {PEAK_METRIC: peak.gflops}, tags
