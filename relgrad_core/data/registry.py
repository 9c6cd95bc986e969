"""``load_dataset(name, ...)``: one entry point for every data set, with argument checking.

Each name maps to a loader that is imported only when asked for, so that the optional pieces
(pandas for GAS/HEPMASS, h5py for BSDS300, the flow code behind ``teacher``) are never needed
to import :mod:`relgrad_core`. :func:`register_dataset` adds a user's loader under a new name;
:data:`DATASETS` is a live view, so everything that validates names against it sees the new one.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import torch

from relgrad_core.checks import check_dtype, check_seed
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

_BUILTIN: frozenset[str] = frozenset(_REGISTRY)


class _Names(Sequence[str]):
    """A read-only, always current tuple-like view of registered names (in registration order)."""

    def __init__(self, only_file_sets: bool) -> None:
        self._only_file_sets = only_file_sets

    def _names(self) -> tuple[str, ...]:
        return tuple(n for n, e in _REGISTRY.items() if e.reads_files or not self._only_file_sets)

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, Sequence) else other)

    def __hash__(self) -> int:
        return hash(self._names())

    def __repr__(self) -> str:
        return repr(self._names())


#: Every registered name, built-in and user-registered (a live view; ``tuple(DATASETS)`` snapshots it).
DATASETS: Sequence[str] = _Names(only_file_sets=False)
#: The names whose loaders read files under a data root.
FILE_DATASETS: Sequence[str] = _Names(only_file_sets=True)


def dataset_names() -> tuple[str, ...]:
    """The names :func:`load_dataset` accepts right now."""
    return tuple(_REGISTRY)


def register_dataset(name: str, loader: Loader, *, summary: str = "user-registered") -> None:
    """Make ``load_dataset(name, ...)`` call ``loader``.

    ``loader`` returns a :class:`Dataset` (e.g. ``Dataset.from_arrays(...)``). It is called with the
    keyword options the caller passes, plus ``seed``, ``dtype`` and ``root`` where its signature takes
    them; if it takes no ``dtype`` the result is cast. Its result is checked like a built-in loader's.

    Raises:
        TypeError: ``name`` is not a non-empty str or ``loader`` is not callable.
        ValueError: ``name`` is already registered (built-in or not).
    """
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise TypeError(f"dataset name must be a non-empty str without surrounding spaces, got {name!r}")
    if not callable(loader):
        raise TypeError(f"loader for dataset {name!r} must be callable, got {type(loader).__name__}")
    if name in _REGISTRY:
        kind = "a built-in" if name in _BUILTIN else "an already registered"
        raise ValueError(f"dataset name {name!r} is {kind} data set; choose another name")
    takes_root = "root" in inspect.signature(loader).parameters
    _REGISTRY[name] = Entry(lambda: loader, takes_root, summary)


def unregister_dataset(name: str) -> None:
    """Remove a name added by :func:`register_dataset` (built-in sets cannot be removed)."""
    if name in _BUILTIN:
        raise ValueError(f"{name!r} is a built-in data set and cannot be unregistered")
    if name not in _REGISTRY:
        raise ValueError(f"dataset {name!r} is not registered")
    del _REGISTRY[name]


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
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(_REGISTRY)}")
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
    open_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    fixed = ("root", "seed", "dtype")
    accepted = [
        p for p in parameters if p not in fixed and parameters[p].kind is not inspect.Parameter.VAR_KEYWORD
    ]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown and not open_kwargs:
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
        and p.name not in fixed
    ]
    if required:
        raise TypeError(f"dataset {name!r} requires argument(s) {', '.join(required)}")
    if _REGISTRY[name].reads_files:
        kwargs["root"] = root
    for key, value in (("seed", seed), ("dtype", dtype)):
        if key in parameters or open_kwargs:
            kwargs[key] = value
    data = loader(**kwargs)
    if isinstance(data, Dataset) and data.train.dtype != dtype:
        data = data.to(dtype=dtype)
    return validate_dataset(data, name)


def validate_dataset(data: object, name: str | None = None) -> Dataset:
    """A loader's result must be a :class:`Dataset` (checked at construction) with its splits on the CPU."""
    if not isinstance(data, Dataset):
        raise TypeError(f"loader for {name or '?'!r} returned {type(data).__name__}, expected a Dataset")
    for split in ("train", "val", "test"):
        tensor = getattr(data, split)
        if tensor.device.type != "cpu":
            raise ValueError(
                f"{data.name}: {split} split is on {tensor.device}, loaders must return CPU tensors"
            )
    return data
