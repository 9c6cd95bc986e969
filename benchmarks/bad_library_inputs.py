"""Bad inputs tried against the core library's public entry points: ``(label, call)`` pairs.

:mod:`benchmarks.bad_inputs` runs each call and records the exception it raises (type and first line);
``tests/benchmarks/test_bad_library_inputs.py`` asserts that every call raises before any work with a
message that names the problem. Each sample-taking entry point is tried with the same bad batches (NaN,
inf, no rows, wrong width, integer dtype, not a tensor), so the table shows one check applied everywhere.
A float64 batch given to a float32 flow is not bad input: every entry point casts it, and the table has a
row that shows so; likewise a bfloat16 array (widened exactly) and a header-less CSV with a byte-order mark
(every row kept). Degenerate data (a constant or linearly dependent column, fewer rows than columns) is
refused by ``Dataset.from_arrays`` before any training.
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


def _csv_file(name: str, text: str, encoding: str = "utf-8") -> str:
    """A CSV file of ``text`` in the temporary folder ``relgrad-bad-library`` (a stable path)."""
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.gettempdir()) / "relgrad-bad-library"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text, encoding=encoding)
    return str(path)


def _rows_csv(rows: np.ndarray) -> str:
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows)


def _bom_csv_keeps_every_row() -> object:
    """A header-less CSV written with a UTF-8 byte-order mark: its first row is data, not a header."""
    from relgrad_core import load_data_file

    rows = np.random.default_rng(0).normal(size=(300, DIM))
    data = load_data_file(_csv_file("bom.csv", _rows_csv(rows), encoding="utf-8-sig"))
    kept = sum(len(split) for split in (data.train, data.val, data.test))
    if kept != len(rows):
        raise AssertionError(f"{kept} of {len(rows)} rows kept")
    return f"{kept} of {len(rows)} rows kept"


def _bfloat16_is_widened() -> object:
    from relgrad_core import Dataset

    x = torch.from_numpy(np.random.default_rng(0).normal(size=(40, DIM))).to(torch.bfloat16)
    data = Dataset.from_arrays(x)
    return f"widened exactly to float32, split {len(data.train)}/{len(data.val)}/{len(data.test)}"


def _degenerate_cases() -> list[tuple[str, Callable[[], object]]]:
    """Data whose density does not exist, or that a CSV quirk or a dtype would turn into wrong data."""
    from relgrad_core import Dataset, load_data_file

    rows = np.random.default_rng(0).normal(size=(40, DIM))

    def with_column(column: np.ndarray) -> np.ndarray:
        return np.column_stack([rows, column])

    huge = rows.copy()
    huge[5, 1] = 1e39
    return [
        ("Dataset.from_arrays(a column of 0.1)", lambda: Dataset.from_arrays(with_column(np.full(40, 0.1)))),
        ("Dataset.from_arrays(a duplicated column)", lambda: Dataset.from_arrays(with_column(rows[:, 1]))),
        (
            "Dataset.from_arrays(a column = 3·another + 1)",
            lambda: Dataset.from_arrays(with_column(3.0 * rows[:, 2] + 1.0)),
        ),
        (
            "Dataset.from_arrays(a column = a sum of two)",
            lambda: Dataset.from_arrays(with_column(rows[:, 0] + rows[:, 3])),
        ),
        ("Dataset.from_arrays(fewer rows than columns)", lambda: Dataset.from_arrays(rows[:8].T.copy())),
        (
            "Dataset.from_arrays(1e39, standardize=False)",
            lambda: Dataset.from_arrays(huge, standardize=False),
        ),
        ("Dataset.from_arrays(complex)", lambda: Dataset.from_arrays(rows.astype(np.complex128))),
        ("Dataset.from_arrays(object array)", lambda: Dataset.from_arrays(rows.astype(object))),
        (
            "load_data_file(CSV whose first row holds NA)",
            lambda: load_data_file(_csv_file("na.csv", "1.5,NA,2,3\n" + _rows_csv(rows))),
        ),
    ]


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
    "Dataset.from_arrays(strings)": "strings",
    "Dataset.from_arrays(1 row)": "1 row(s)",
    "Dataset.from_arrays(x, val=other width)": "different widths",
    "Dataset.from_arrays(x, val_fraction=1.2)": "val_fraction must lie strictly between 0 and 1",
    "load_dataset('imagenet')": "unknown dataset 'imagenet'",
    "load_data_file('absent.npy')": "no such file",
    "Dataset.from_arrays(a column of 0.1)": "column(s) 4 (counting from 0) constant",
    "Dataset.from_arrays(a duplicated column)": "columns 1 and 4 (counting from 0) are identical",
    "Dataset.from_arrays(a column = 3·another + 1)": "column 4 (counting from 0) is an affine function",
    "Dataset.from_arrays(a column = a sum of two)": "is a linear combination of columns 0, 3",
    "Dataset.from_arrays(fewer rows than columns)": "training rows for 8 columns",
    "Dataset.from_arrays(1e39, standardize=False)": "beyond torch.float32",
    "Dataset.from_arrays(complex)": "complex numbers",
    "Dataset.from_arrays(object array)": "Python objects",
    "load_data_file(CSV whose first row holds NA)": "line 1, column 2: 'NA' is a missing value",
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
    cases += _degenerate_cases()
    cases.append(("flow.log_prob(x), x: float64 (flow float32)", _cast_float64))
    cases.append(("Dataset.from_arrays(bfloat16 tensor)", _bfloat16_is_widened))
    cases.append(("load_data_file(header-less CSV with a byte-order mark)", _bom_csv_keeps_every_row))
    return cases


#: Inputs that are not bad, shown beside the bad ones: cast, widened or read whole.
ACCEPTED = {
    "flow.log_prob(x), x: float64 (flow float32)",
    "Dataset.from_arrays(bfloat16 tensor)",
    "load_data_file(header-less CSV with a byte-order mark)",
}
