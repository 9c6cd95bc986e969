"""Seconds and memory of one full training step (gradient + optimizer step), measured honestly.

GPU: CUDA events around each step after a synchronise, peak from the caching allocator's statistics.
CPU: ``perf_counter`` around each step; peak = resident state (parameters, optimizer state, input) plus the
largest transient allocation during one extra profiled step (:func:`profiled_cpu_peak`).

A busy machine inflates some repeats, never deflates them, so the **minimum** is the contention-robust
statistic (as ``timeit`` argues); the median and the IQR are kept beside it. A timing whose spread
``IQR/median`` exceeds :data:`RETIME_THRESHOLD` is taken as disturbed and measured once more with
:data:`RETIME_FACTOR` × the repeats; the better-behaved of the two (lower spread) is kept.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from time import perf_counter

import torch

from relgrad_core.checks import check_nonnegative_int, check_positive_int, check_positive_number
from relgrad_core.device import resolve_device, synchronize
from relgrad_core.flow import Flow
from relgrad_core.machine import load_avg_1m
from relgrad_core.methods import check_method
from relgrad_core.training import make_optimizer

#: IQR/median above which a timing counts as disturbed: on a quiet machine repeats of one step agree to a
#: few per cent; a quarter of the median means something else ran during some of them.
RETIME_THRESHOLD = 0.25
#: A disturbed timing is re-measured once with this many times the repeats.
RETIME_FACTOR = 3
#: Side of the square matrices of :func:`matmul_peak` by device type: on a CPU a 2048² product (17 GFLOP)
#: runs at the BLAS's full rate in a fraction of a second on 2 cores; a GPU needs a larger one to fill.
PEAK_SIZES: dict[str, int] = {"cpu": 2048, "cuda": 8192}


@dataclass
class StepTiming:
    """Per-step seconds over ``repeats`` measured steps (after warm-up) and peak memory in bytes.

    ``retimed`` is True when the first timing looked disturbed and was measured again (the kept one is the
    better-behaved of the two); ``load_avg_1m`` is the machine's 1-minute load average at the end of it.
    """

    median: float
    min: float
    iqr: float
    mean: float
    times: list[float]
    repeats: int
    retimed: bool
    load_avg_1m: float
    peak_mem_bytes: int
    device: str

    @property
    def peak_mem_mb(self) -> float:
        return self.peak_mem_bytes / 2**20

    @property
    def spread(self) -> float:
        """``IQR/median``, the disturbance measure compared with :data:`RETIME_THRESHOLD`."""
        return relative_spread(self.times)


def quartiles(times: list[float]) -> tuple[float, float]:
    """First and third quartiles (both the single value for one time)."""
    if len(times) < 2:
        return times[0], times[0]
    q = statistics.quantiles(times, n=4)
    return q[0], q[2]


def relative_spread(times: list[float]) -> float:
    """``IQR/median`` of the times (0 for a single time, inf for a zero median)."""
    q1, q3 = quartiles(times)
    median = statistics.median(times)
    return (q3 - q1) / median if median > 0 else math.inf


class StepRunner:
    """One training step (``method``'s direction, then the optimizer) on a fixed batch.

    The method, the flow and the batch are checked once here; :meth:`__call__` and :meth:`timed` then run
    the step without any check, so they can be repeated in a timing loop. The flow is trained by it.
    """

    def __init__(
        self, flow: Flow, x: torch.Tensor, method: str, *, optimizer: str = "adam", lr: float = 1e-3
    ) -> None:
        self.spec = check_method(flow, method)
        self.flow = flow
        self.x = flow.check_input(x)
        check_positive_number("learning rate", lr)
        self.optimizer = make_optimizer(optimizer, flow.parameters(), lr)
        self.device = flow.device

    def __call__(self) -> None:
        self.spec.apply(self.flow, self.x)
        self.optimizer.step()

    def timed(self) -> tuple[float, float]:
        """``(gradient seconds, whole-step seconds)`` of one step, after a synchronise."""
        synchronize(self.device)
        if self.device.type == "cuda":
            events = [torch.cuda.Event(enable_timing=True) for _ in range(3)]
            events[0].record()
            self.spec.apply(self.flow, self.x)
            events[1].record()
            self.optimizer.step()
            events[2].record()
            events[2].synchronize()
            return events[0].elapsed_time(events[1]) / 1e3, events[0].elapsed_time(events[2]) / 1e3
        start = perf_counter()
        self.spec.apply(self.flow, self.x)
        middle = perf_counter()
        self.optimizer.step()
        end = perf_counter()
        return middle - start, end - start

    def step_times(self, repeats: int) -> list[float]:
        """Whole-step seconds of ``repeats`` consecutive steps."""
        return [self.timed()[1] for _ in range(repeats)]

    def resident_bytes(self) -> int:
        """Bytes held between steps: parameters, optimizer state and the batch."""
        total = _tensor_bytes(self.flow.parameters()) + _tensor_bytes([self.x])
        return total + sum(_tensor_bytes(state.values()) for state in self.optimizer.state.values())


def _tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence file descriptor 2 for the duration: the profiler's C++ side logs start/stop lines and
    allocator notes there on every use, which would flood a sweep's output. Python exceptions still
    propagate with their messages."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def profiled_cpu_peak(fn: Callable[[], object]) -> int:
    """Largest net CPU allocation (bytes) while running ``fn()`` once under ``torch.profiler``.

    Blocks allocated before profiling starts are not counted, so for a training step the figure is what the
    step allocates on top of the resident state. The exact running total lives in the profiler's
    *experimental* event tree (torch ≥ 2.0, not a stable API): it is used when present and well-formed;
    otherwise the public per-operator ``self_cpu_memory_usage`` is summed in start order (an estimate that
    books each operator's net allocation at its start).
    """
    from torch.profiler import ProfilerActivity, profile

    with _quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    peak = peak_from_event_tree(prof)
    return peak if peak is not None else _peak_from_op_events(prof)


def peak_from_event_tree(prof: object) -> int | None:
    """The running allocation total's maximum from the experimental event tree; None when unavailable."""
    results = getattr(getattr(prof, "profiler", None), "kineto_results", None)
    tree = getattr(results, "experimental_event_tree", None)
    if not callable(tree):
        return None
    try:
        stack = list(tree())
        peak, seen = 0, False
        while stack:
            event = stack.pop()
            stack.extend(event.children)
            fields = event.extra_fields
            if type(fields).__name__ == "_ExtraFields_Allocation" and fields.device.type == "cpu":
                peak, seen = max(peak, int(fields.total_allocated)), True
    except (AttributeError, TypeError, RuntimeError):
        return None  # the internal layout changed: fall back to the public events
    return peak if seen else None


def _peak_from_op_events(prof) -> int:
    """Running sum of the public per-operator net allocations in start order, maximised (≥ 0)."""
    total, peak = 0, 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        total += int(event.self_cpu_memory_usage)
        peak = max(peak, total)
    return peak


def time_step(
    flow: Flow,
    x: torch.Tensor,
    method: str,
    *,
    warmup: int = 3,
    repeats: int = 10,
    optimizer: str = "adam",
    lr: float = 1e-3,
    measure_memory: bool = True,
    retime_threshold: float | None = RETIME_THRESHOLD,
) -> StepTiming:
    """Time ``repeats`` full steps of ``method`` on batch ``x`` after ``warmup`` untimed ones.

    Everything is validated once before the first step. A timing with ``IQR/median > retime_threshold``
    is measured once more with ``RETIME_FACTOR × repeats`` steps (``None`` turns this off). The flow's
    weights are restored afterwards, so timing does not train it. Peak memory covers the resident state and
    the step's transients (see module docstring).
    """
    check_nonnegative_int("warmup", warmup)
    check_positive_int("repeats", repeats)
    check_positive_number("retime_threshold", retime_threshold, allow_none=True)
    saved = {k: v.detach().to("cpu", copy=True) for k, v in flow.state_dict().items()}
    runner = StepRunner(flow, x, method, optimizer=optimizer, lr=lr)
    device = runner.device
    try:
        for _ in range(warmup):
            runner()
        synchronize(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = runner.step_times(repeats)
        retimed = retime_threshold is not None and relative_spread(times) > retime_threshold
        if retimed:
            again = runner.step_times(RETIME_FACTOR * repeats)
            if relative_spread(again) <= relative_spread(times):
                times = again
        load = load_avg_1m()
        if device.type == "cuda":
            peak = int(torch.cuda.max_memory_allocated(device))
        else:
            peak = runner.resident_bytes() + profiled_cpu_peak(runner) if measure_memory else 0
    finally:
        flow.load_state_dict(saved)  # copies the private CPU snapshot back into the parameters
    q1, q3 = quartiles(times)
    return StepTiming(
        median=statistics.median(times),
        min=min(times),
        iqr=q3 - q1,
        mean=statistics.fmean(times),
        times=times,
        repeats=len(times),
        retimed=retimed,
        load_avg_1m=load,
        peak_mem_bytes=peak,
        device=str(device),
    )


@dataclass(frozen=True)
class MatmulPeak:
    """The best rate of an n×n by n×n product (``2·n³`` FLOPs) on one device, dtype and thread count."""

    gflops: float
    size: int
    seconds: float
    device: str
    dtype: str
    threads: int


def matmul_peak(
    device: str | torch.device | None = "auto",
    dtype: torch.dtype = torch.float32,
    *,
    size: int | None = None,
    repeats: int = 3,
) -> MatmulPeak:
    """The machine's practical matrix-multiply peak: best of ``repeats`` timed ``size``² products after one
    untimed one (``size``: :data:`PEAK_SIZES` by device type; 2048 elsewhere).

    The best, not the median: like a step timing, a product is only ever slowed by other work. On a CPU it
    runs on torch's current thread count (a trial's: its Ray CPUs), so that it bounds what a trial can reach.
    """
    resolved = resolve_device(device)
    n = PEAK_SIZES.get(resolved.type, 2048) if size is None else size
    check_positive_int("size", n)
    check_positive_int("repeats", repeats)
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=generator).to(device=resolved, dtype=dtype) for _ in range(2))
    out = torch.empty(n, n, device=resolved, dtype=dtype)
    torch.mm(a, b, out=out)
    times = []
    for _ in range(repeats):
        synchronize(resolved)
        start = perf_counter()
        torch.mm(a, b, out=out)
        synchronize(resolved)
        times.append(perf_counter() - start)
    best = min(times)
    return MatmulPeak(
        gflops=2.0 * n**3 / best / 1e9,
        size=n,
        seconds=best,
        device=str(resolved),
        dtype=str(dtype).removeprefix("torch."),
        threads=torch.get_num_threads(),
    )
