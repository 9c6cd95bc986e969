"""Seconds and memory of one full training step (gradient + optimizer step), measured honestly.

GPU: CUDA events around each step after a synchronise, peak from the caching allocator's statistics.
CPU: ``perf_counter`` around each step; peak = resident state (parameters, optimizer state, input) plus the
largest transient allocation during one extra profiled step (torch's profiler reports every CPU allocation
with a running total).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from relgrad_core.device import synchronize
from relgrad_core.flow import Flow
from relgrad_core.gradients import backward, check_method
from relgrad_core.training import make_optimizer


@dataclass
class StepTiming:
    """Per-step seconds over ``repeats`` measured steps (after warm-up) and peak memory in bytes."""

    median: float
    min: float
    iqr: float
    mean: float
    times: list[float]
    peak_mem_bytes: int
    device: str

    @property
    def peak_mem_mb(self) -> float:
        return self.peak_mem_bytes / 2**20


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


def _cpu_transient_peak(step) -> int:
    """Largest net CPU allocation (bytes) while running ``step()`` once, from the profiler's running total.

    Blocks allocated before profiling starts (last step's gradients) are not in that total, so the figure is
    what the step itself allocates on top of the resident state.
    """
    from torch.profiler import ProfilerActivity, profile

    with _quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    peak = 0
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        event = stack.pop()
        stack.extend(event.children)
        fields = event.extra_fields
        if type(fields).__name__ == "_ExtraFields_Allocation" and fields.device.type == "cpu":
            peak = max(peak, int(fields.total_allocated))
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
) -> StepTiming:
    """Time ``repeats`` full steps of ``method`` on batch ``x`` after ``warmup`` untimed ones.

    The flow's weights are restored afterwards, so timing does not train it. Peak memory covers the
    resident state and the step's transients (see module docstring).
    """
    check_method(flow, method)
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}")
    device = flow.device
    x = x.to(device=device, dtype=flow.dtype)
    flow._check_input(x)
    saved = {k: v.detach().to("cpu", copy=True) for k, v in flow.state_dict().items()}
    opt = make_optimizer(optimizer, flow.parameters(), lr)

    def step() -> None:
        backward(flow, x, method)
        opt.step()

    try:
        for _ in range(warmup):
            step()
        synchronize(device)
        times: list[float] = []
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            for _ in range(repeats):
                start, end = (
                    torch.cuda.Event(enable_timing=True),
                    torch.cuda.Event(enable_timing=True),
                )
                start.record()
                step()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1000.0)
            peak = int(torch.cuda.max_memory_allocated(device))
        else:
            for _ in range(repeats):
                started = time.perf_counter()
                step()
                times.append(time.perf_counter() - started)
            peak = 0
            if measure_memory:
                resident = _tensor_bytes(flow.parameters()) + _tensor_bytes([x])
                resident += sum(_tensor_bytes(state.values()) for state in opt.state.values())
                peak = resident + _cpu_transient_peak(step)
    finally:
        flow.load_state_dict(saved)  # copies the private CPU snapshot back into the parameters
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return StepTiming(
        median=statistics.median(times),
        min=min(times),
        iqr=quartiles[2] - quartiles[0],
        mean=statistics.fmean(times),
        times=times,
        peak_mem_bytes=peak,
        device=str(device),
    )
