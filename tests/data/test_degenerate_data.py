"""Data that rounding or a CSV quirk must not let through: constant and dependent columns, headers that
are data, missing values, values beyond float32, dtypes numpy cannot hold (issue 17, findings 1-4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from relgrad_core import Dataset, load_data_file
from relgrad_core.data import Standardization


def _table(rows: int = 300, dim: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, dim)) * 2.0 + 1.0


def _with(x: np.ndarray, column: np.ndarray) -> np.ndarray:
    return np.column_stack([x, column])


# --- finding 1: a constant column is constant whatever its value -----------------------------------
@pytest.mark.parametrize("value", [0.1, 0.3, 3.14159, -7.77, 5.0, 0.0])
@pytest.mark.parametrize("standardize", [True, False])
def test_a_constant_column_is_refused_whatever_rounding_does(value: float, standardize: bool) -> None:
    x = _table()
    x[:, 2] = value  # 0.1 is not exact in binary: its computed sd is ~1e-17, not 0
    with pytest.raises(ValueError, match=r"column\(s\) 2 \(counting from 0\) constant") as info:
        Dataset.from_arrays(x, standardize=standardize)
    assert "rounding" in str(info.value) and "\n" not in str(info.value)


def test_standardization_itself_uses_the_relative_rule() -> None:
    x = _table()
    x[:, 1] = 0.1
    assert x[:, 1].std() > 0  # the old rule (sd = 0) would have let this column through
    with pytest.raises(ValueError, match=r"column\(s\) 1 .*constant"):
        Standardization.fit(x, name="t")


def test_real_variation_at_float32_precision_is_not_constant() -> None:
    x = _table()
    x[:, 3] = np.float32(1.0) + np.float32(1.2e-7) * np.random.default_rng(1).integers(0, 4, size=300)
    data = Dataset.from_arrays(x)  # a column that varies by a float32 ulp is data, not rounding
    assert data.dim == 4


# --- finding 2: duplicated and dependent columns, too few rows -----------------------------------------
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (lambda x: x[:, 1], r"columns 1 and 4 \(counting from 0\) are identical"),
        (lambda x: 3.0 * x[:, 1] - 2.0, r"column 4 \(counting from 0\) is an affine function of column 1"),
        (lambda x: x[:, 0] + 1e-13 * x[:, 2], "column 4 .* affine function of column 0"),  # numerically
        (lambda x: x[:, 0] - 2.0 * x[:, 3], r"column 4 .* linear combination of columns 0, 3"),
    ],
)
@pytest.mark.parametrize("standardize", [True, False])
def test_dependent_columns_are_refused_naming_them(extra, message: str, standardize: bool) -> None:
    x = _table()
    with pytest.raises(ValueError, match=message) as info:
        Dataset.from_arrays(_with(x, extra(x)), standardize=standardize)
    assert "rank-deficient" in str(info.value) and "degenerate" in str(info.value)


def test_a_nearly_dependent_but_real_column_is_kept() -> None:
    x = _table()
    noisy = x[:, 0] + x[:, 1] + 1e-3 * np.random.default_rng(2).normal(size=300)
    assert Dataset.from_arrays(_with(x, noisy)).dim == 5


def test_fewer_training_rows_than_columns_plus_one_are_refused() -> None:
    x = np.random.default_rng(0).normal(size=(10, 8))  # 6 training rows after the 70/15/15 split
    with pytest.raises(ValueError, match="6 training rows for 8 columns; at least 9 are needed"):
        Dataset.from_arrays(x)


def test_a_data_file_with_a_duplicated_column_is_refused(tmp_path: Path) -> None:
    x = _table()
    np.save(tmp_path / "dup.npy", _with(x, x[:, 2]))
    with pytest.raises(ValueError, match=r"data file '.*dup.npy': the training rows are rank-deficient"):
        load_data_file(tmp_path / "dup.npy")


# --- finding 3: a header is a header only when it cannot be data ---------------------------------------
def _csv(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "table.csv"
    path.write_text(text, encoding=encoding)
    return path


def _rows(x: np.ndarray) -> str:
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in x)


def test_a_byte_order_mark_does_not_turn_the_first_row_into_a_header(tmp_path: Path) -> None:
    x = _table(300, 3)
    data = load_data_file(_csv(tmp_path, _rows(x), encoding="utf-8-sig"), standardize=False)
    assert sum(len(s) for s in (data.train, data.val, data.test)) == 300  # all rows, none taken as header


def test_a_header_after_a_byte_order_mark_is_still_a_header(tmp_path: Path) -> None:
    x = _table(300, 3)
    data = load_data_file(_csv(tmp_path, "a,Na,c\n" + _rows(x), encoding="utf-8-sig"))
    assert sum(len(s) for s in (data.train, data.val, data.test)) == 300 and data.dim == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,NA,3\n" + _rows(_table(20, 3)), r"line 1, column 2: 'NA' is a missing value"),
        ("1,2,3\n4,,6\n" + _rows(_table(20, 3)), r"line 2, column 2: '' is a missing value"),
        ("a,b,c\n1,2,3\n4,5,nan\n", r"line 3, column 3 \('c'\): 'nan' is a missing value"),
        ("1,2,3\n4,?,6\n" + _rows(_table(20, 3)), r"line 2, column 2: '\?' is a missing value"),
        ("1,2,3\n4,inf,6\n" + _rows(_table(20, 3)), r"line 2, column 2: 'inf' is not a finite number"),
        ("1,2,3\n4,1e400,6\n" + _rows(_table(20, 3)), r"line 2, column 2: '1e400' overflows float64"),
        ("x1,2020,2021\n1,2,3\n", r"line 1, column 1: 'x1' is not a number"),  # data, not a header
    ],
)
def test_missing_and_odd_cells_are_named_with_their_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_data_file(_csv(tmp_path, text))


# --- finding 4: values beyond float32, dtypes numpy cannot hold -----------------------------------------
def test_a_value_beyond_float32_is_named_as_such() -> None:
    x = _table()
    x[7, 1] = 1e39
    with pytest.raises(ValueError, match=r"values up to 1e\+39, beyond torch.float32") as info:
        Dataset.from_arrays(x, standardize=False)
    assert "non-finite" not in str(info.value)
    assert Dataset.from_arrays(x, standardize=False, dtype=torch.float64).train.dtype == torch.float64


def test_bfloat16_is_widened_exactly() -> None:
    x = torch.from_numpy(_table()).to(torch.bfloat16)
    data = Dataset.from_arrays(x, standardize=False)
    ref = Dataset.from_arrays(x.float().numpy(), standardize=False)
    torch.testing.assert_close(data.train, ref.train, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.zeros(20, 2, dtype=torch.complex64), "complex numbers"),
        (np.array([[1.0, "a"]] * 20, dtype=object), "Python objects"),
        (np.array(["2020-01-01"] * 20, dtype="datetime64[D]").reshape(10, 2), "datetimes"),
    ],
)
def test_unsupported_dtypes_say_what_they_hold(x: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        Dataset.from_arrays(x)
