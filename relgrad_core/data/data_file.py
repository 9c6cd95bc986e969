"""``load_data_file(path)``: a ``.npy``, ``.npz`` or ``.csv`` file of your own → a :class:`Dataset`.

* ``.npy``: one 2-D numeric array (rows = samples), split into train/val/test with ``seed``.
* ``.npz``: arrays ``train`` (and optionally ``val``, ``test``; a missing one is cut out of train), or a
  single array of any name, split like ``.npy``.
* ``.csv``: comma-separated numbers, one sample per line (UTF-8, a byte-order mark allowed). The first line
  is a header (column names) only when none of its cells is a number, so no data row is ever taken for
  a header. Missing values (an empty cell, ``NA``, ``N/A``, ``nan``, ``null``, ``None``, ``?``) are refused
  with their line and column: fill them or drop their rows first.

Every problem (missing file, unknown extension, wrong shape, NaN/inf, missing values, strings, empty, too
few rows, degenerate columns) is one ``ValueError`` whose one-line message names the file and the problem,
raised before any training.
"""

from __future__ import annotations

import csv
import math
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch

from relgrad_core.data._arrays import as_float_matrix
from relgrad_core.data.dataset import Dataset

SUFFIXES = (".npy", ".npz", ".csv")
NPZ_SPLITS = ("train", "val", "test")
#: CSV cells that mean "no value" in common exports (compared case-insensitively, stripped).
MISSING_VALUES = frozenset({"", "na", "n/a", "nan", "-nan", "null", "none", "?"})


def load_data_file(
    path: str | os.PathLike[str],
    *,
    seed: int = 0,
    standardize: bool = True,
    dtype: torch.dtype = torch.float32,
) -> Dataset:
    """Read ``path`` and return ``Dataset.from_arrays(...)`` of its contents (named after the file).

    ``seed`` drives the shuffle of any split cut from the data; with ``standardize`` (default) every
    split is standardised with the training statistics and reported LLs are in the file's units
    (``Dataset.ll_offset``).

    Raises:
        ValueError: one line naming the file and what is wrong with it.
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    file = Path(path).expanduser()
    label = f"data file '{file}'"
    if file.suffix.lower() not in SUFFIXES:
        raise ValueError(
            f"{label}: unknown extension {file.suffix or '(none)'!r}; use one of {', '.join(SUFFIXES)}"
        )
    if not file.is_file():
        raise ValueError(f"{label}: no such file")
    reader = {".npy": _read_npy, ".npz": _read_npz, ".csv": _read_csv}[file.suffix.lower()]
    arrays = reader(file, label)
    name = file.stem or "custom"
    try:
        data = Dataset.from_arrays(
            arrays["train"],
            val=arrays.get("val"),
            test=arrays.get("test"),
            seed=seed,
            standardize=standardize,
            name=name,
            dtype=dtype,
        )
    except (TypeError, ValueError) as err:
        raise ValueError(f"{label}: {str(err).removeprefix(name + ': ')}") from err
    data.info["source"] = str(file)
    return data


def _read_npy(file: Path, label: str) -> dict[str, np.ndarray]:
    try:
        array = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError, pickle.UnpicklingError) as err:
        raise ValueError(f"{label}: not a readable .npy array ({_one_line(err)})") from err
    return {"train": _checked(array, "the array", label)}


def _read_npz(file: Path, label: str) -> dict[str, np.ndarray]:
    try:
        with np.load(file, allow_pickle=False) as archive:
            contents = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as err:
        raise ValueError(f"{label}: not a readable .npz archive ({_one_line(err)})") from err
    if not contents:
        raise ValueError(f"{label}: the archive holds no arrays")
    if len(contents) == 1:
        ((key, array),) = contents.items()
        return {"train": _checked(array, f"array {key!r}", label)}
    if "train" not in contents or not set(contents) <= set(NPZ_SPLITS):
        raise ValueError(
            f"{label}: holds arrays {sorted(contents)}; expected 'train' with optional 'val' and 'test', "
            f"or a single array"
        )
    return {key: _checked(array, f"array {key!r}", label) for key, array in contents.items()}


def _read_csv(file: Path, label: str) -> dict[str, np.ndarray]:
    try:
        # utf-8-sig: a byte-order mark (Excel writes one) is not part of the first cell
        with open(file, newline="", encoding="utf-8-sig") as handle:
            lines = [(number, row) for number, row in enumerate(csv.reader(handle), start=1) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{label}: not a readable CSV file ({_one_line(err)})") from err
    if not lines:
        raise ValueError(f"{label}: the file is empty")
    header: list[str] | None = None
    first = lines[0][1]
    if not any(_is_number(cell) for cell in first) and not all(_is_missing(cell) for cell in first):
        header = [cell.strip() for cell in first]
        lines = lines[1:]
    if not lines:
        raise ValueError(f"{label}: has a header but no data rows")
    width = len(header) if header is not None else len(lines[0][1])
    values = np.empty((len(lines), width))
    for index, (number, row) in enumerate(lines):
        if len(row) != width:
            raise ValueError(f"{label}: line {number} has {len(row)} cells, expected {width}")
        for column, cell in enumerate(row):
            values[index, column] = _cell_value(cell, f"{label}: line {number}, {_column(column, header)}")
    return {"train": _checked(values, "the table", label)}


def _column(index: int, header: list[str] | None) -> str:
    return f"column {index + 1}" + (f" ({header[index]!r})" if header else "")


def _cell_value(cell: str, where: str) -> float:
    """The number in ``cell``; a missing, non-numeric or non-finite cell is an error naming ``where``."""
    text = cell.strip()
    if _is_missing(cell):
        raise ValueError(
            f"{where}: {text!r} is a missing value; fill in or drop the rows with missing values first"
        )
    if not _is_number(cell):
        raise ValueError(f"{where}: {text!r} is not a number")
    value = float(text)
    if not math.isfinite(value):
        what = "is not a finite number" if "inf" in text.lower() else "overflows float64"
        raise ValueError(f"{where}: {text!r} {what}")
    return value


def _is_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING_VALUES


def _is_number(cell: str) -> bool:
    """A cell that parses as a number and is not a missing-value marker (``nan`` parses but is missing)."""
    if _is_missing(cell):
        return False
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _checked(array: np.ndarray, what: str, label: str) -> np.ndarray:
    """Shape/dtype/finiteness problems become ``ValueError`` (a file's content is a value problem)."""
    try:
        return as_float_matrix(array, what, name=label)
    except TypeError as err:
        raise ValueError(str(err)) from err


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())
