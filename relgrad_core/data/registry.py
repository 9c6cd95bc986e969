"""``load_dataset(name, ...)``: one entry point for every data set, with argument checking.

Each name maps to a loader that is imported only when asked for, so that the optional pieces
(pandas for GAS/HEPMASS, h5py for BSDS300, the flow code behind ``teacher``) are never needed
to import :mod:`relgrad_core`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from relgrad_core.data._checks import check_dtype, check_seed, validate_dataset
from relgrad_core.data.dataset import Dataset

Loader = Callable[..., Dataset]


@dataclass(frozen=True)
class Entry:
    """How to reach one data set's loader, and whether it reads files under a data root."""

    get_loader: Callable[[], Loader]
    reads_files: bool
    summary: str


def _toy(name: str) -> Loader:
    from relgrad_core.data.toy import load_toy

    return partial(load_toy, name)


def _teacher() -> Loader:
    from relgrad_core.data.teacher import load_teacher

    return load_teacher


def _digits() -> Loader:
    from relgrad_core.data.digits import load_digits

    return load_digits


def _noise() -> Loader:
    from relgrad_core.data.noise import load_noise

    return load_noise


def _uci(name: str) -> Loader:
    from relgrad_core.data import uci

    return getattr(uci, f"load_{name}")


def _mnist() -> Loader:
    from relgrad_core.data.mnist import load_mnist

    return load_mnist


_TOY_NAMES = ("moons", "rings", "checkerboard", "sine", "trimodal", "2spirals", "8gaussians")
_UCI_NAMES = ("power", "gas", "hepmass", "miniboone", "bsds300")

_REGISTRY: dict[str, Entry] = {
    "digits": Entry(_digits, False, "sklearn 8×8 digits, 64-D, logit space"),
    **{n: Entry(partial(_toy, n), False, f"toy 2-D set '{n}'") for n in _TOY_NAMES},
    "teacher": Entry(_teacher, False, "samples of a random DenseFlow, exact log-density"),
    "noise": Entry(_noise, False, "standard normal of any dim, timing only"),
    **{n: Entry(partial(_uci, n), True, f"MAF-preprocessed UCI '{n}' (local files)") for n in _UCI_NAMES},
    "mnist": Entry(_mnist, True, "MNIST IDX files, 784-D, logit space (local files)"),
}

DATASETS: tuple[str, ...] = tuple(_REGISTRY)
FILE_DATASETS: tuple[str, ...] = tuple(n for n, e in _REGISTRY.items() if e.reads_files)


def dataset_options(name: str) -> dict[str, object]:
    """The keyword arguments ``name`` accepts beyond root/seed/dtype, with their defaults."""
    loader = _get_loader(name)
    return {
        p.name: (None if p.default is inspect.Parameter.empty else p.default)
        for p in inspect.signature(loader).parameters.values()
        if p.name not in ("root", "seed", "dtype") and p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def _get_loader(name: str) -> Loader:
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    try:
        return _REGISTRY[name].get_loader()
    except ImportError as err:
        raise ImportError(f"dataset {name!r} could not be loaded: {err}") from err


def load_dataset(
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    **kwargs: object,
) -> Dataset:
    """Load data set ``name`` as float CPU tensors ``train``/``val``/``test`` of shape ``(n, dim)``.

    Args:
        name: one of :data:`DATASETS`.
        root: directory holding the files of the file-based sets (:data:`FILE_DATASETS`); falls
            back to ``$RELGRAD_DATA``, then ``~/.relgrad/data``. Ignored by generated sets, so a
            caller may pass it for every name.
        seed: makes generated data, shuffles and dequantisation noise reproducible.
        dtype: floating dtype of the splits.
        **kwargs: set-specific options (sizes, ``noise``, ``dim``, ``max_rows``...); see
            :func:`dataset_options`. An option the set does not take is a ``TypeError``.
    """
    loader = _get_loader(name)
    check_seed(seed)
    check_dtype(dtype)
    parameters = inspect.signature(loader).parameters
    accepted = [p for p in parameters if p not in ("root", "seed", "dtype")]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(
            f"dataset {name!r} does not take argument(s) {', '.join(unknown)}; "
            f"it accepts: {', '.join(accepted) or 'no options'}"
        )
    required = [
        p.name
        for p in parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind is inspect.Parameter.KEYWORD_ONLY
        and p.name not in kwargs
        and p.name not in ("root", "seed", "dtype")
    ]
    if required:
        raise TypeError(f"dataset {name!r} requires argument(s) {', '.join(required)}")
    if _REGISTRY[name].reads_files:
        kwargs["root"] = root
    data = loader(seed=seed, dtype=dtype, **kwargs)
    return validate_dataset(data)
