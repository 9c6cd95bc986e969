"""time_step: the structure of what it reports, that it leaves the flow untouched, and its memory figure."""

import math

import pytest
import torch

from relgrad_core import make_flow, method_names, time_step


@pytest.mark.parametrize("method", method_names())
def test_time_step_reports_positive_times_and_restores_the_weights(method):
    flow = make_flow(method, 8, 2, device="cpu", seed=0)
    before = {k: v.clone() for k, v in flow.state_dict().items()}
    timing = time_step(flow, torch.randn(16, 8), method, warmup=1, repeats=5)
    # a disturbed first timing is re-measured with 3× the repeats; either way `repeats` counts the kept one
    assert timing.repeats == len(timing.times) and all(t > 0 for t in timing.times)
    assert timing.repeats == 5 or (timing.retimed and timing.repeats == 15)
    assert timing.min <= timing.median <= max(timing.times) and timing.iqr >= 0
    assert timing.device == "cpu"
    for k, v in flow.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_peak_memory_covers_the_resident_state_and_grows_with_d():
    small = time_step(make_flow("relative", 64, 2, device="cpu"), torch.randn(32, 64), "relative", repeats=2)
    large = time_step(
        make_flow("relative", 256, 2, device="cpu"), torch.randn(32, 256), "relative", repeats=2
    )
    # parameters + Adam's two moments + gradients: at least 4 copies of 2 D×D float32 matrices
    assert large.peak_mem_bytes >= 4 * 2 * 256 * 256 * 4
    assert large.peak_mem_bytes > 8 * small.peak_mem_bytes  # quadratic in D (×16 ideally)
    assert large.peak_mem_mb == pytest.approx(large.peak_mem_bytes / 2**20)


def test_bad_repeats_rejected():
    flow = make_flow("relative", 4, 2, device="cpu")
    with pytest.raises(ValueError, match="repeats must be a positive integer"):
        time_step(flow, torch.randn(2, 4), "relative", repeats=0)


class ScriptedClock:
    """A ``perf_counter`` stand-in: StepRunner.timed reads it three times per step (start, after the
    gradient, end); each step then lasts the next scripted duration."""

    def __init__(self, durations):
        self.durations, self.now, self.calls = iter(durations), 0.0, 0
        self.current = 0.0

    def __call__(self) -> float:
        phase = self.calls % 3
        self.calls += 1
        if phase == 0:
            self.current = next(self.durations)
            self.start = self.now
            return self.now
        if phase == 1:
            return self.start + self.current / 2
        self.now = self.start + self.current + 1.0
        return self.start + self.current


def _scripted_timing(monkeypatch, durations, **kwargs):
    import relgrad_core.timing as timing

    monkeypatch.setattr(timing, "perf_counter", ScriptedClock(durations))
    flow = make_flow("relative", 4, 2, device="cpu")
    x = torch.randn(8, 4)
    return time_step(flow, x, "relative", warmup=1, repeats=10, measure_memory=False, **kwargs)


def test_a_disturbed_timing_is_retimed_and_the_quiet_one_kept(monkeypatch):
    ms = 1e-3
    slowed = [1 * ms] * 5 + [10 * ms] * 5  # half the repeats hit by another job
    timing = _scripted_timing(monkeypatch, slowed + [2 * ms] * 30)
    assert timing.retimed and timing.repeats == 30 and len(timing.times) == 30
    assert timing.min == pytest.approx(2 * ms) and timing.median == pytest.approx(2 * ms)
    assert timing.iqr == pytest.approx(0.0)


def test_the_retime_keeps_the_first_timing_when_the_second_is_worse(monkeypatch):
    ms = 1e-3
    first = [1 * ms] * 6 + [1.5 * ms] * 4  # IQR/median = 0.5 > 0.25: retimed
    worse = [1 * ms, 10 * ms] * 15  # IQR/median = 1.6
    timing = _scripted_timing(monkeypatch, first + worse)
    assert timing.retimed and timing.repeats == 10
    assert timing.min == pytest.approx(1 * ms) and timing.median == pytest.approx(1 * ms)


def test_a_quiet_timing_is_not_retimed_and_the_min_survives_one_slow_step(monkeypatch):
    ms = 1e-3
    timing = _scripted_timing(monkeypatch, [1 * ms] * 9 + [50 * ms])
    assert not timing.retimed and timing.repeats == 10
    assert timing.min == pytest.approx(1 * ms) and timing.median == pytest.approx(1 * ms)
    assert timing.mean > 5 * ms  # the mean is what a single slow step spoils


def test_retiming_can_be_turned_off(monkeypatch):
    ms = 1e-3
    timing = _scripted_timing(monkeypatch, [1 * ms] * 5 + [10 * ms] * 5, retime_threshold=None)
    assert not timing.retimed and timing.spread > 0.25


def test_the_load_average_is_recorded():
    import os

    timing = time_step(make_flow("mlp", 4, 2, device="cpu"), torch.randn(8, 4), "mlp", repeats=2)
    if hasattr(os, "getloadavg"):
        assert timing.load_avg_1m >= 0
    else:
        assert math.isnan(timing.load_avg_1m)


def _allocate_two_blocks():
    a = torch.ones(1_000_000)  # 4 MB
    b = torch.ones(1_000_000)  # 4 MB more, both alive at once
    return float(a[0] + b[0])


def test_profiled_peak_from_the_event_tree_and_from_the_public_fallback(monkeypatch):
    import relgrad_core.timing as timing

    exact = timing.profiled_cpu_peak(_allocate_two_blocks)
    assert exact >= 8_000_000
    # feature detection: an object without the experimental tree falls back instead of crashing
    assert timing.peak_from_event_tree(object()) is None
    monkeypatch.setattr(timing, "peak_from_event_tree", lambda prof: None)
    fallback = timing.profiled_cpu_peak(_allocate_two_blocks)
    assert fallback >= 8_000_000 and fallback == pytest.approx(exact, rel=0.5)
