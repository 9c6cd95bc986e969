"""The same input checks on every public entry point of every method (the peers' flows included),
consistent dtype handling, bools refused as numbers."""

import math

import numpy as np
import pytest
import torch

from relgrad_core import Flow, backward, evaluate_nll, fit, make_flow, method_names, time_step
from relgrad_core.checks import (
    check_flag,
    check_nonnegative_int,
    check_open_interval,
    check_positive_int,
    check_positive_number,
    check_seed,
)

DIM = 3
#: Every registered method: relgrad's own, the installed peers, and any a plugin added.
METHODS = method_names()


def _flow(method: str = "relative") -> Flow:
    return make_flow(method, DIM, 2, device="cpu")


def _good() -> torch.Tensor:
    return torch.randn(8, DIM, generator=torch.Generator().manual_seed(0))


ENTRY_POINTS = {
    "backward": lambda flow, x, m: backward(flow, x, m),
    "log_prob": lambda flow, x, m: flow.log_prob(x),
    "forward": lambda flow, x, m: flow(x),
    "inverse": lambda flow, x, m: flow.inverse(x),
    "time_step": lambda flow, x, m: time_step(flow, x, m, warmup=0, repeats=1, measure_memory=False),
    "evaluate_nll": lambda flow, x, m: evaluate_nll(flow, x),
    "fit (train)": lambda flow, x, m: fit(flow, (x, _good()), method=m, max_steps=1),
    "fit (val)": lambda flow, x, m: fit(flow, (_good(), x), method=m, max_steps=1),
}

BAD_INPUTS = {
    "nan": (_good().index_fill(0, torch.tensor([2]), float("nan")), "contains NaN or inf values"),
    "inf": (_good().index_fill(1, torch.tensor([0]), float("inf")), "contains NaN or inf values"),
    "-inf": (_good().index_fill(1, torch.tensor([0]), -float("inf")), "contains NaN or inf values"),
    "empty": (torch.empty(0, DIM), "is empty"),
    "wrong dim": (torch.randn(4, DIM + 1), rf"has dimension {DIM + 1} but the flow has dim={DIM}"),
    "1-D": (torch.randn(DIM), "must be 2-D"),
    "3-D": (torch.randn(2, 2, DIM), "must be 2-D"),
    "int": (torch.ones(4, DIM, dtype=torch.int64), "expected a floating-point tensor"),
    "bool": (torch.ones(4, DIM, dtype=torch.bool), "expected a floating-point tensor"),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_entry_point_refuses_bad_input_before_any_work(entry, method):
    flow = _flow(method)
    before = [p.detach().clone() for p in flow.parameters()]
    for bad, (x, match) in BAD_INPUTS.items():
        with pytest.raises(ValueError, match=match):
            ENTRY_POINTS[entry](flow, x, method)
        assert all(torch.equal(a, b) for a, b in zip(before, flow.parameters(), strict=True)), bad
        assert all(p.grad is None for p in flow.parameters()), bad


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_entry_point_refuses_a_non_tensor(entry, method):
    with pytest.raises(TypeError, match=r"must be a torch\.Tensor"):
        ENTRY_POINTS[entry](_flow(method), [[0.0] * DIM], method)


def _results(value: object) -> list[object]:
    """What an entry point returned, as values to compare (a timing's clock readings aside)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, tuple):
        return [v for part in value for v in _results(part)]
    if hasattr(value, "records"):  # fit's History: the losses of every evaluation
        return [(r.train_nll, r.val_nll, r.train_data_nll) for r in value.records]
    if hasattr(value, "peak_mem_bytes"):  # time_step's StepTiming: times differ run to run
        return [value.repeats]
    return [value]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_float64_input_is_cast_to_a_float32_flow_everywhere(entry, method):
    """Given float64 input, a float32 flow computes exactly what it computes on the float32 copy (the
    cast is exact: the float64 batch holds float32 values), and its parameters and gradients stay
    float32."""
    flows = [_flow(method), _flow(method)]
    x = _good()
    got = ENTRY_POINTS[entry](flows[0], x.double(), method)
    expected = ENTRY_POINTS[entry](flows[1], x, method)
    for a, b in zip(_results(got), _results(expected), strict=True):
        if isinstance(a, torch.Tensor):
            assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for p, q in zip(flows[0].parameters(), flows[1].parameters(), strict=True):
        assert p.dtype == torch.float32 and (p.grad is None or p.grad.dtype == torch.float32)
        torch.testing.assert_close(p, q, rtol=0, atol=0)


@pytest.mark.parametrize("method", METHODS)
def test_log_prob_of_float64_input_equals_that_of_its_float32_copy(method):
    flow, x = _flow(method), _good()
    got = flow.log_prob(x.double())
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, flow.log_prob(x))
    assert evaluate_nll(flow, x.double()) == pytest.approx(evaluate_nll(flow, x))


@pytest.mark.parametrize("method", METHODS)
def test_a_float64_flow_upcasts_float32_input(method):
    flow = make_flow(method, DIM, 2, device="cpu", dtype=torch.float64)
    assert flow.log_prob(_good()).dtype == torch.float64


@pytest.mark.parametrize("method", METHODS)
def test_sample_refuses_non_positive_integers(method):
    flow = _flow(method)
    for n in (0, -1, True, 2.0, "3", None):
        with pytest.raises(ValueError, match="number of samples must be a positive integer"):
            flow.sample(n)


@pytest.mark.parametrize(
    "change,match",
    [
        ({"lr": True}, "learning rate must be a positive finite number, got True"),
        ({"lr": -1e-3}, "learning rate must be a positive"),
        ({"lr": math.inf}, "learning rate must be a positive"),
        ({"batch_size": True}, "batch_size must be a positive integer, got True"),
        ({"batch_size": 2.0}, "batch_size must be a positive integer"),
        ({"epochs": False}, "epochs must be a positive integer"),
        ({"patience": 0}, "patience must be a positive integer"),
        ({"max_steps": True}, "max_steps must be a positive integer"),
        ({"time_budget_s": True}, "time_budget_s must be a positive finite number"),
        ({"time_budget_s": math.nan}, "time_budget_s must be a positive finite number"),
        ({"eval_batch_size": 0}, "eval_batch_size must be a positive integer"),
        ({"epochs": None, "patience": None}, "fit would never stop"),
    ],
)
def test_fit_refuses_bad_numbers_and_no_stopping_rule(change, match):
    x = _good()
    kwargs = {"method": "relative", "lr": 1e-3, "batch_size": 4, "epochs": 1} | change
    with pytest.raises(ValueError, match=match):
        fit(_flow(), (x, x), **kwargs)


def test_time_step_refuses_bad_numbers():
    flow, x = _flow(), _good()
    for kwargs, match in (
        ({"repeats": True}, "repeats must be a positive integer"),
        ({"warmup": -1}, "warmup must be a non-negative integer"),
        ({"lr": True}, "learning rate must be a positive"),
        ({"retime_threshold": 0.0}, "retime_threshold must be a positive"),
        ({"optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'"),
    ):
        with pytest.raises(ValueError, match=match):
            time_step(flow, x, "relative", **kwargs)


@pytest.mark.parametrize("method", METHODS)
def test_inverse_refuses_infinite_latents(method):
    z = torch.zeros(2, DIM)
    z[1, 0] = math.inf
    with pytest.raises(ValueError, match=r"z contains NaN or inf values \(1 of 2 rows\)"):
        _flow(method).inverse(z)


def test_fit_accepts_numpy_pairs_and_says_what_it_expects_otherwise():
    x = _good().numpy()
    history = fit(_flow(), (x, x.astype(np.float64)), method="relative", batch_size=4, max_steps=2)
    assert history.steps == 2
    for data, match in (
        (x, "data must be a Dataset or a \\(train, val\\) pair"),
        ((x, x, x), "of length 3"),
        ({"train": x}, "got dict"),
    ):
        with pytest.raises(TypeError, match=match):
            fit(_flow(), data, method="relative", max_steps=1)


def test_shared_number_checks():
    assert check_positive_int("n", 3) == 3 and check_positive_int("n", None, allow_none=True) is None
    assert check_positive_number("x", 2) == 2.0
    for bad in (True, 0, -2, 1.5, "1"):
        with pytest.raises(ValueError, match="n must be a positive integer"):
            check_positive_int("n", bad)
    for bad in (False, 0.0, -1.0, math.nan, math.inf, "1"):
        with pytest.raises(ValueError, match="x must be a positive finite number"):
            check_positive_number("x", bad)


def test_one_rule_for_the_core_and_its_data_loaders():
    """The loaders' checks are the core's: a number of the wrong kind or out of range is a ValueError that
    names the data set and the argument; a bad flag is a TypeError."""
    assert check_positive_int("max_rows", None, allow_none=True, where="digits") is None
    with pytest.raises(ValueError, match=r"^digits: max_rows must be a positive integer, got 0$"):
        check_positive_int("max_rows", 0, where="digits")
    assert check_open_interval("lam", 0.1, 0.0, 0.5) == 0.1
    for bad in (0.0, 0.5, True, "0.1", math.nan):
        with pytest.raises(ValueError, match=r"^mnist: lam must lie strictly between 0 and 0\.5, got "):
            check_open_interval("lam", bad, 0.0, 0.5, where="mnist")
    assert check_seed(0) == 0 and check_nonnegative_int("warmup", 0) == 0
    for bad in (-1, True, 1.0):
        with pytest.raises(ValueError, match="seed must be a non-negative integer"):
            check_seed(bad)
    assert check_flag("standardize", False) is False
    with pytest.raises(TypeError, match=r"^digits: standardize must be True or False, got 1$"):
        check_flag("standardize", 1, where="digits")
    # the loaders go through them
    from relgrad_core import load_dataset

    with pytest.raises(ValueError, match=r"^noise: dim must be a positive integer, got 2\.0$"):
        load_dataset("noise", dim=2.0)
    with pytest.raises(ValueError, match=r"^8gaussians: noise must be a positive finite number, got -0\.1$"):
        load_dataset("8gaussians", noise=-0.1)
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got -1"):
        load_dataset("moons", seed=-1)
