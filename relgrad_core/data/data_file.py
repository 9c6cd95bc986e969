"""``load_data_file(path)``: a ``.npy``, ``.npz`` or ``.csv`` file of your own → a :class:`Dataset`.

* ``.npy``: one 2-D numeric array (rows = samples), split into train/val/test with ``seed``.
* ``.npz``: arrays ``train`` (and optionally ``val``, ``test``; a missing one is cut out of train), or a
  single array of any name, split like ``.npy``.
* ``.csv``: comma-separated numbers, one sample per line; a first line with any non-numeric cell is taken
  as the header (column names).

Every problem (missing file, unknown extension, wrong shape, NaN/inf, strings, empty, too few rows) is
one ``ValueError`` whose one-line message names the file and the problem, raised before any training.
"""

from __future__ import annotations

import csv
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
        with open(file, newline="", encoding="utf-8") as handle:
            lines = [(number, row) for number, row in enumerate(csv.reader(handle), start=1) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{label}: not a readable CSV file ({_one_line(err)})") from err
    if not lines:
        raise ValueError(f"{label}: the file is empty")
    header: list[str] | None = None
    if not all(_is_number(cell) for cell in lines[0][1]):
        header = [cell.strip() for cell in lines[0][1]]
        lines = lines[1:]
    if not lines:
        raise ValueError(f"{label}: has a header but no data rows")
    width = len(header) if header is not None else len(lines[0][1])
    values = np.empty((len(lines), width))
    for index, (number, row) in enumerate(lines):
        if len(row) != width:
            raise ValueError(f"{label}: line {number} has {len(row)} cells, expected {width}")
        for column, cell in enumerate(row):
            if not _is_number(cell):
                name = f"column {column + 1}" + (f" ({header[column]!r})" if header else "")
                raise ValueError(f"{label}: line {number}, {name}: {cell.strip()!r} is not a number")
            values[index, column] = float(cell)
    return {"train": _checked(values, "the table", label)}


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return bool(cell.strip())


def _checked(array: np.ndarray, what: str, label: str) -> np.ndarray:
    """Shape/dtype/finiteness problems become ``ValueError`` (a file's content is a value problem)."""
    try:
        return as_float_matrix(array, what, name=label)
    except TypeError as err:
        raise ValueError(str(err)) from err


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())
