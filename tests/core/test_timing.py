"""time_step: the structure of what it reports, that it leaves the flow untouched, and its memory figure."""

import pytest
import torch

from relgrad_core import METHODS, make_flow, time_step


@pytest.mark.parametrize("method", METHODS)
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
