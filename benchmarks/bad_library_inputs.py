"""Bad inputs tried against the core library's public entry points: ``(label, call)`` pairs.

:mod:`benchmarks.bad_inputs` runs each call and records the exception it raises (type and first line);
``tests/benchmarks/test_bad_library_inputs.py`` asserts that every call raises before any work with a
message that names the problem. Each sample-taking entry point is tried with the same bad batches (NaN,
inf, no rows, wrong width, integer dtype, not a tensor), so the table shows one check applied everywhere.
A float64 batch given to a float32 flow is not bad input: every entry point casts it, and the table has a
row that shows so.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

DIM = 4
METHOD = "relative"


def _flow(method: str = METHOD):
    from relgrad_core import make_flow

    return make_flow(method, DIM, 2, device="cpu")


def _good(n: int = 32) -> torch.Tensor:
    return torch.randn(n, DIM, generator=torch.Generator().manual_seed(0))


#: What each bad batch's message must say (a fragment of it).
BATCH_EXPECT = {
    "NaN entry": "NaN or inf",
    "inf entry": "NaN or inf",
    "0 rows": "empty (0 rows)",
    "wrong width": "has dimension 5 but the flow has dim=4",
    "int64 dtype": "dtype torch.int64",
    "a list": "must be a torch.Tensor",
}


def _bad_batches() -> dict[str, object]:
    nan, inf = _good(), _good()
    nan[3, 1] = float("nan")
    inf[5, 0] = float("inf")
    return {
        "NaN entry": nan,
        "inf entry": inf,
        "0 rows": torch.empty(0, DIM),
        "wrong width": torch.randn(8, DIM + 1),
        "int64 dtype": torch.ones(8, DIM, dtype=torch.int64),
        "a list": [[0.0] * DIM] * 8,
    }


def _entry_points() -> dict[str, Callable[[object], object]]:
    from relgrad_core import backward, evaluate_nll, fit, time_step

    return {
        "flow.log_prob(x)": lambda x: _flow().log_prob(x),
        "flow.inverse(z)": lambda x: _flow().inverse(x),
        "backward(flow, x, 'relative')": lambda x: backward(_flow(), x, METHOD),
        "time_step(flow, x, 'relative')": lambda x: time_step(_flow(), x, METHOD, warmup=0, repeats=1),
        "evaluate_nll(flow, x)": lambda x: evaluate_nll(_flow(), x),
        "fit(flow, (x, val), ...)": lambda x: fit(_flow(), (x, _good()), method=METHOD, epochs=1),
    }


def _cast_float64() -> object:
    """float64 samples to a float32 flow: cast (as fit casts), returns float32 values."""
    out = _flow().log_prob(_good().double())
    if out.dtype != torch.float32:
        raise AssertionError(f"expected float32 log-probs, got {out.dtype}")
    return "cast to float32"


def _argument_cases() -> list[tuple[str, Callable[[], object]]]:
    from relgrad_core import Dataset, backward, fit, load_data_file, load_dataset, make_flow, time_step

    x, val = _good(), _good()
    rows = np.random.default_rng(0).normal(size=(40, DIM))
    nan_rows = rows.copy()
    nan_rows[2, 2] = np.nan
    return [
        ("make_flow('newton', 4, 2)", lambda: make_flow("newton", DIM, 2)),
        ("make_flow('relative', 0, 2)", lambda: make_flow("relative", 0, 2)),
        ("make_flow('relative', 4, True)", lambda: make_flow("relative", DIM, True)),
        ("make_flow('relative', 4, 2, alpha=1.5)", lambda: make_flow("relative", DIM, 2, alpha=1.5)),
        (
            "make_flow('relative', 4, 2, device='cuda:7')",
            lambda: make_flow("relative", DIM, 2, device="cuda:7"),
        ),
        ("backward(flow, x, 'newton')", lambda: backward(_flow(), x, "newton")),
        ("backward(lu_flow, x, 'relative')", lambda: backward(_flow("lu"), x, METHOD)),
        ("fit(..., lr=True)", lambda: fit(_flow(), (x, val), method=METHOD, lr=True, epochs=1)),
        ("fit(..., lr=nan)", lambda: fit(_flow(), (x, val), method=METHOD, lr=float("nan"), epochs=1)),
        ("fit(..., batch_size=0)", lambda: fit(_flow(), (x, val), method=METHOD, batch_size=0, epochs=1)),
        (
            "fit(..., optimizer='lbfgs')",
            lambda: fit(_flow(), (x, val), method=METHOD, optimizer="lbfgs", epochs=1),
        ),
        ("fit(flow, (train, val, test), ...)", lambda: fit(_flow(), (x, val, val), method=METHOD, epochs=1)),
        ("time_step(..., repeats=0)", lambda: time_step(_flow(), x, METHOD, repeats=0)),
        ("Dataset.from_arrays(1-D array)", lambda: Dataset.from_arrays(rows[:, 0])),
        ("Dataset.from_arrays(array with NaN)", lambda: Dataset.from_arrays(nan_rows)),
        ("Dataset.from_arrays(strings)", lambda: Dataset.from_arrays(np.array([["a", "b"]] * 10))),
        ("Dataset.from_arrays(1 row)", lambda: Dataset.from_arrays(rows[:1])),
        ("Dataset.from_arrays(x, val=other width)", lambda: Dataset.from_arrays(rows, val=rows[:, :2])),
        ("Dataset.from_arrays(x, val_fraction=1.2)", lambda: Dataset.from_arrays(rows, val_fraction=1.2)),
        ("load_dataset('imagenet')", lambda: load_dataset("imagenet")),
        ("load_data_file('absent.npy')", lambda: load_data_file("absent.npy")),
    ]


#: What each argument case's message must say (a fragment of it).
ARGUMENT_EXPECT = {
    "make_flow('newton', 4, 2)": "unknown method 'newton'",
    "make_flow('relative', 0, 2)": "dim must be a positive integer",
    "make_flow('relative', 4, True)": "depth must be a positive integer, got True",
    "make_flow('relative', 4, 2, alpha=1.5)": "alpha must lie in (0, 1]",
    "make_flow('relative', 4, 2, device='cuda:7')": "cuda",
    "backward(flow, x, 'newton')": "unknown method 'newton'",
    "backward(lu_flow, x, 'relative')": "LUFlow",
    "fit(..., lr=True)": "got True",
    "fit(..., lr=nan)": "got nan",
    "fit(..., batch_size=0)": "batch_size must be a positive integer",
    "fit(..., optimizer='lbfgs')": "unknown optimizer 'lbfgs'",
    "fit(flow, (train, val, test), ...)": "(train, val) pair",
    "time_step(..., repeats=0)": "repeats must be a positive integer",
    "Dataset.from_arrays(1-D array)": "must be 2-D",
    "Dataset.from_arrays(array with NaN)": "non-finite",
    "Dataset.from_arrays(strings)": "not strings",
    "Dataset.from_arrays(1 row)": "1 row(s)",
    "Dataset.from_arrays(x, val=other width)": "different widths",
    "Dataset.from_arrays(x, val_fraction=1.2)": "val_fraction must lie strictly between 0 and 1",
    "load_dataset('imagenet')": "unknown dataset 'imagenet'",
    "load_data_file('absent.npy')": "no such file",
}


def expected_fragment(label: str) -> str:
    """The fragment that the message of case ``label`` must contain."""
    if label in ARGUMENT_EXPECT:
        return ARGUMENT_EXPECT[label]
    return BATCH_EXPECT[label.rsplit("x: ", 1)[1]]


def library_cases() -> list[tuple[str, Callable[[], object]]]:
    """Every case: each entry point × each bad batch, then bad arguments, then the float64 row."""
    cases: list[tuple[str, Callable[[], object]]] = []
    for call_label, call in _entry_points().items():
        for what, batch in _bad_batches().items():
            cases.append((f"{call_label}, x: {what}", lambda call=call, batch=batch: call(batch)))
    cases += _argument_cases()
    cases.append(("flow.log_prob(x), x: float64 (flow float32)", _cast_float64))
    return cases


#: The float64 row is the one case expected to be accepted.
ACCEPTED = {"flow.log_prob(x), x: float64 (flow float32)"}
