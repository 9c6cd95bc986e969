"""The MAF-preprocessed tabular benchmarks: POWER, GAS, HEPMASS, MINIBOONE and BSDS300.

Every step follows Papamakarios, Pavlakou & Murray (2017), "Masked Autoregressive Flow for
Density Estimation", as implemented in their code (github.com/gpapamak/maf, ``datasets/*.py``),
which every later flow paper (NAF, FFJORD, NSF, the relative-gradient paper) reuses; the raw files
are the ones of their data release (zenodo.org/record/1161203). Files are read from
``<root>/<set>/...`` where ``root`` is the argument, else ``$RELGRAD_DATA``, else
``~/.relgrad/data``.

The splits of these sets are fixed by the MAF code (POWER shuffles with ``RandomState(42)``, the
others keep file order), so ``seed`` only chooses the rows kept by ``max_rows``, which subsamples
each split *after* preprocessing so that the normalisation is the standard one.

pandas and h5py are imported inside the loaders that need them only.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from relgrad_core.checks import check_dtype, check_positive_int, check_seed
from relgrad_core.data._arrays import Standardization
from relgrad_core.data._files import DataRoot, find_file, resolve_root
from relgrad_core.data._split import cap_splits, maf_tail_split, to_tensor
from relgrad_core.data.dataset import Dataset

PathArg = str | os.PathLike[str] | None

POWER_SHUFFLE_SEED = 42  # MAF datasets/power.py: np.random.RandomState(42)
POWER_RAW_COLUMNS = 8
GAS_DROPPED = ("Meth", "Eth", "Time")
GAS_CORRELATION_LIMIT = 0.98
HEPMASS_REPEAT_LIMIT = 5


def _prepare(seed: int, dtype: torch.dtype, max_rows: int | None, name: str) -> None:
    check_seed(seed)
    check_dtype(dtype)
    check_positive_int("max_rows", max_rows, allow_none=True, where=name)


def _load_npy(name: str, path: Path) -> np.ndarray:
    """A 2-D numeric ``.npy`` array as float64, or a ``ValueError`` naming the file."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, pickle.UnpicklingError) as err:
        raise ValueError(f"{name}: '{path}' is not a readable .npy array ({err})") from err
    if not isinstance(array, np.ndarray) or array.ndim != 2 or 0 in array.shape:
        raise ValueError(
            f"{name}: '{path}' must hold a non-empty 2-D array, got shape {getattr(array, 'shape', None)}"
        )
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name}: '{path}' holds dtype {array.dtype}, expected numbers")
    return array.astype(np.float64)


def _standardised_maf_split(
    name: str, data: np.ndarray, *, fit_on: str, ddof: int, columns: list[str] | None = None
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], Standardization]:
    """The tail POWER, GAS and MINIBOONE share: the MAF 10%/10% tail split, then ``(x − μ)/s`` with
    μ, s from ``fit_on`` (``"train+val"``, or ``"all"`` rows as GAS does) and the given ``ddof``."""
    train, val, test = maf_tail_split(data, dataset=name)
    rows = np.vstack((train, val)) if fit_on == "train+val" else data
    scaler = Standardization.fit(rows, name=name, fit_on=fit_on, ddof=ddof, columns=columns)
    return (scaler.apply(train), scaler.apply(val), scaler.apply(test)), scaler


def _finish(
    name: str,
    splits: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    seed: int,
    dtype: torch.dtype,
    max_rows: int | None,
    transform: str,
    info: dict[str, Any],
    scaler: Standardization | None = None,
) -> Dataset:
    """Tensors, ``max_rows`` and the metadata every MAF loader records.

    LLs are reported on the preprocessed (standardised) data, the MAF convention every later paper's
    UCI numbers use, so ``ll_offset = 0``; ``info["standardization"]["log_abs_det"]`` converts to raw units.
    """
    tensors = tuple(to_tensor(s, dtype) for s in splits)
    train, val, test = cap_splits(tensors, max_rows, seed)  # type: ignore[arg-type]
    info = {
        **info,
        "max_rows": max_rows,
        "seed": seed,
        "split": {"train": len(train), "val": len(val), "test": len(test)},
    }
    if scaler is not None:
        info["standardization"] = scaler.as_info()
        # kept under the old keys too: existing callers read info["mean"], info["std"]
        info["mean"], info["std"] = scaler.mean.tolist(), scaler.std.tolist()
    return Dataset(
        name=name,
        train=train,
        val=val,
        test=test,
        transform=transform,
        info=info,
        ll_space="MAF-preprocessed (standardised) data",
        ll_offset=0.0,
    )


def load_power(
    *,
    root: PathArg = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    max_rows: int | None = None,
) -> Dataset:
    """UCI household electric power consumption, 6-D (MAF ``datasets/power.py``).

    ``power/data.npy`` (N × 8) → shuffle rows with ``RandomState(42)`` → delete column 3 (global
    intensity) then column 1 (global reactive power) → add uniform noise to break ties in the
    quantised readings, drawn from the same generator in MAF's order (voltage ``0.01·U``, gap
    ``0.001·U``, sub-meterings ``U`` ×3) and stacked as (gap, voltage, sub-meterings, time = 0)
    → test = last 10%, val = last 10% of the rest → normalise with the train+val mean and
    (population) std.
    """
    name = "power"
    _prepare(seed, dtype, max_rows, name)
    data_root = resolve_root(root)
    path = find_file(name, data_root, "power/data.npy")
    data = _load_npy(name, path)
    if data.shape[1] != POWER_RAW_COLUMNS:
        raise ValueError(
            f"{name}: '{path}' has {data.shape[1]} columns, the MAF release has {POWER_RAW_COLUMNS}"
        )

    rng = np.random.RandomState(POWER_SHUFFLE_SEED)
    rng.shuffle(data)
    n = data.shape[0]
    data = np.delete(data, 3, axis=1)
    data = np.delete(data, 1, axis=1)
    voltage_noise = 0.01 * rng.rand(n, 1)
    gap_noise = 0.001 * rng.rand(n, 1)
    sub_metering_noise = rng.rand(n, 3)
    time_noise = np.zeros((n, 1))
    data = data + np.hstack((gap_noise, voltage_noise, sub_metering_noise, time_noise))

    splits, scaler = _standardised_maf_split(name, data, fit_on="train+val", ddof=0)
    return _finish(
        name,
        splits,
        seed=seed,
        dtype=dtype,
        max_rows=max_rows,
        transform="MAF POWER: drop cols 3,1; uniform jitter; standardise (train+val stats)",
        info={"source": str(path)},
        scaler=scaler,
    )


def _gas_highly_correlated(frame: Any) -> np.ndarray:
    """Per column, how many columns (itself included) it correlates with above 0.98."""
    return (frame.corr() > GAS_CORRELATION_LIMIT).to_numpy().sum(axis=1)


def load_gas(
    *,
    root: PathArg = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    max_rows: int | None = None,
) -> Dataset:
    """UCI gas sensor array (ethylene + CO), 8-D (MAF ``datasets/gas.py``).

    ``gas/ethylene_CO.pickle`` (a pickled pandas DataFrame) → drop ``Meth``, ``Eth``, ``Time`` →
    while some column has correlation > 0.98 with another, drop the first such column and
    recompute → standardise with the mean and (sample, ddof=1) std of the whole table → test =
    last 10%, val = last 10% of the rest (file order, no shuffle).

    The file is unpickled: only load files you trust.
    """
    name = "gas"
    _prepare(seed, dtype, max_rows, name)
    import pandas as pd

    data_root = resolve_root(root)
    path = find_file(name, data_root, "gas/ethylene_CO.pickle")
    try:
        frame = pd.read_pickle(path)
    except Exception as err:  # pickle/pandas raise many types for a corrupt file
        raise ValueError(f"{name}: '{path}' is not a readable pandas pickle ({err})") from err
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{name}: '{path}' holds a {type(frame).__name__}, expected a DataFrame")
    missing = [c for c in GAS_DROPPED if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{name}: '{path}' lacks column(s) {missing}; expected the MAF release "
            f"with columns {list(GAS_DROPPED)} and the sensor readings"
        )
    frame = frame.drop(columns=list(GAS_DROPPED))
    non_numeric = [str(c) for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric or frame.shape[1] == 0:
        raise ValueError(f"{name}: '{path}' needs numeric sensor columns; non-numeric: {non_numeric}")

    dropped: list[str] = []
    counts = _gas_highly_correlated(frame)
    while np.any(counts > 1):
        column = frame.columns[int(np.flatnonzero(counts > 1)[0])]
        dropped.append(str(column))
        frame = frame.drop(columns=[column])
        counts = _gas_highly_correlated(frame)

    values = frame.to_numpy(dtype=np.float64)
    splits, scaler = _standardised_maf_split(
        name, values, fit_on="all", ddof=1, columns=[str(c) for c in frame.columns]
    )
    return _finish(
        name,
        splits,
        seed=seed,
        dtype=dtype,
        max_rows=max_rows,
        transform="MAF GAS: drop Meth/Eth/Time and columns with corr > 0.98; standardise",
        info={
            "source": str(path),
            "columns": [str(c) for c in frame.columns],
            "dropped_correlated": dropped,
        },
        scaler=scaler,
    )


def _read_csv(name: str, path: Path) -> Any:
    import pandas as pd

    try:
        return pd.read_csv(path, index_col=False)
    except Exception as err:  # pandas raises ParserError, UnicodeDecodeError, EmptyDataError...
        raise ValueError(f"{name}: '{path}' is not a readable CSV file ({err})") from err


def _min_value_repeats(column: np.ndarray) -> int:
    """How often the smallest value of ``column`` occurs (see :func:`load_hepmass`)."""
    return int(np.count_nonzero(column == column.min()))


def load_hepmass(
    *,
    root: PathArg = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    max_rows: int | None = None,
) -> Dataset:
    """UCI HEPMASS, mass-1000 subset, 21-D (MAF ``datasets/hepmass.py``).

    ``hepmass/1000_train.csv`` and ``hepmass/1000_test.csv`` (header row; the first column is the
    class label) → keep signal rows (label 1) → drop the label → drop the *last* column of the
    test file, which has one more trailing column than the train file in the release (MAF:
    "the data set is messed up") → standardise both with the train mean and (sample, ddof=1) std
    → drop every feature whose smallest value occurs more than 5 times in train → val = last
    10% of train.

    The feature filter reproduces the MAF code exactly: it is meant to drop features "with too
    many re-occurring values", but counts the occurrences of each feature's *smallest* value
    (``sorted(Counter(...).items())[0]``), which is what yields the standard 21 dimensions.
    """
    name = "hepmass"
    _prepare(seed, dtype, max_rows, name)
    data_root = resolve_root(root)
    train_path = find_file(name, data_root, "hepmass/1000_train.csv")
    test_path = find_file(name, data_root, "hepmass/1000_test.csv")
    train_frame = _read_csv(name, train_path)
    test_frame = _read_csv(name, test_path)

    def signal_rows(frame: Any, path: Path) -> np.ndarray:
        if frame.shape[1] < 2 or frame.shape[0] == 0:
            raise ValueError(f"{name}: '{path}' needs a label column and features, got shape {frame.shape}")
        try:
            values = frame.to_numpy(dtype=np.float64)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{name}: '{path}' has non-numeric entries ({err})") from err
        signal = values[values[:, 0] == 1, 1:]
        if signal.shape[0] == 0:
            raise ValueError(f"{name}: '{path}' has no signal rows (label 1 in the first column)")
        return signal

    train = signal_rows(train_frame, train_path)
    test = signal_rows(test_frame, test_path)[:, :-1]
    if train.shape[1] != test.shape[1]:
        raise ValueError(
            f"{name}: after dropping the label (and the test file's trailing column, as MAF does) "
            f"train has {train.shape[1]} features but test has {test.shape[1]}; expected the test "
            f"file to have exactly one more column than the train file"
        )
    feature_names = [str(c) for c in train_frame.columns[1:]]
    full = Standardization.fit(train, name=name, fit_on="train", ddof=1, columns=feature_names)
    train, test = full.apply(train), full.apply(test)

    removed = [i for i in range(train.shape[1]) if _min_value_repeats(train[:, i]) > HEPMASS_REPEAT_LIMIT]
    kept = [i for i in range(train.shape[1]) if i not in removed]
    if not kept:
        raise ValueError(f"{name}: every feature was removed by the repeated-value filter")
    train, test = train[:, kept], test[:, kept]
    scaler = Standardization(mean=full.mean[kept], std=full.std[kept], fit_on="train", ddof=1)

    n_val = int(0.1 * train.shape[0])
    if n_val < 1 or n_val == train.shape[0]:
        raise ValueError(
            f"{name}: {train.shape[0]} signal rows in '{train_path}' are too few "
            f"for a 10% validation split (at least 10 needed)"
        )
    splits = (train[:-n_val], train[-n_val:], test)
    return _finish(
        name,
        splits,
        seed=seed,
        dtype=dtype,
        max_rows=max_rows,
        transform="MAF HEPMASS: signal rows; standardise (train stats); drop discrete features",
        info={
            "source": [str(train_path), str(test_path)],
            "features": [feature_names[i] for i in kept],
            "removed_features": [feature_names[i] for i in removed],
        },
        scaler=scaler,
    )


def load_miniboone(
    *,
    root: PathArg = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    max_rows: int | None = None,
) -> Dataset:
    """UCI MiniBooNE particle identification, 43-D (MAF ``datasets/miniboone.py``).

    ``miniboone/data.npy`` is already cleaned in the release (outliers and discrete features
    removed) → test = last 10%, val = last 10% of the rest (file order) → normalise with the
    train+val mean and (population) std.
    """
    name = "miniboone"
    _prepare(seed, dtype, max_rows, name)
    data_root = resolve_root(root)
    path = find_file(name, data_root, "miniboone/data.npy")
    data = _load_npy(name, path)
    splits, scaler = _standardised_maf_split(name, data, fit_on="train+val", ddof=0)
    return _finish(
        name,
        splits,
        seed=seed,
        dtype=dtype,
        max_rows=max_rows,
        transform="MAF MINIBOONE: standardise (train+val stats)",
        info={"source": str(path)},
        scaler=scaler,
    )


def load_bsds300(
    *,
    root: PathArg = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    max_rows: int | None = None,
) -> Dataset:
    """BSDS300 natural-image patches, 63-D (MAF ``datasets/bsds300.py``).

    ``BSDS300/BSDS300.hdf5`` holds the ready splits ``train``, ``validation``, ``test`` (8×8
    patches, monochrome, with the DC component removed and the last pixel dropped); read as is.
    """
    name = "bsds300"
    _prepare(seed, dtype, max_rows, name)
    data_root: DataRoot = resolve_root(root)
    path = find_file(name, data_root, "BSDS300/BSDS300.hdf5")
    try:
        import h5py
    except ImportError as err:
        raise ImportError(
            f"{name}: reading '{path}' needs h5py; install it with `pip install h5py` "
            f"(or the project's `data` extra)"
        ) from err
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{name}: '{path}' is not a readable HDF5 file ({err})") from err
    with handle:
        missing = [key for key in ("train", "validation", "test") if key not in handle]
        if missing:
            raise ValueError(
                f"{name}: '{path}' lacks dataset(s) {missing}; expected 'train', 'validation' and 'test'"
            )
        parts = []
        for key in ("train", "validation", "test"):
            array = np.asarray(handle[key][()])
            if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
                raise ValueError(
                    f"{name}: '{path}'[{key!r}] must be a 2-D numeric array, got "
                    f"shape {array.shape} dtype {array.dtype}"
                )
            parts.append(array)
    return _finish(
        name,
        (parts[0], parts[1], parts[2]),
        seed=seed,
        dtype=dtype,
        max_rows=max_rows,
        transform="MAF BSDS300: patches as released (no further preprocessing)",
        info={"source": str(path)},
    )
