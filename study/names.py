"""Names a config may use that live in the core's registries: methods, data sets, optimizers.

Checked when a config is validated, so a method or data set registered in Python is accepted. The
registries live in :mod:`relgrad_core`, whose import (torch) takes seconds: inside
:func:`registry_names_deferred` the names pass unchecked, so the CLI can validate everything else first
and refuse a plain mistake at once, then validate again with the registries.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Callable, Collection, Iterator
from contextvars import ContextVar

from analysis.schema import METHOD_ORDER, PEER_METHODS

#: ``data.dataset`` of a config whose data come from ``data.file`` (``--data-file``).
FILE_DATASET = "file"

#: The kinds of names checked now (None: all of them).
_CHECKED: ContextVar[frozenset[str] | None] = ContextVar("relgrad_config_checked_names", default=None)


@contextlib.contextmanager
def registry_names_deferred(checked: Collection[str] = ()) -> Iterator[None]:
    """Validate configs without looking names up in the core's registries, except the kinds in
    ``checked`` (``method``, ``dataset``, ``optimizer``); validate again outside to check them all."""
    token = _CHECKED.set(frozenset(checked))
    try:
        yield
    finally:
        _CHECKED.reset(token)


def registry_free_methods() -> tuple[str, ...] | None:
    """The method names the core's registry will hold, found without importing it (torch): the built-ins
    (``analysis.schema.METHOD_ORDER``) and the peers whose package is installed (registered exactly
    then), in display order; ``tests/core/test_methods.py`` ties this to the registry. None when the
    registry may hold more: the core is already imported (something may have registered a method) or
    ``RELGRAD_PLUGINS`` names modules that will."""
    if "relgrad_core" in sys.modules or os.environ.get("RELGRAD_PLUGINS", "").strip():
        return None
    peers = [name for name, package in PEER_METHODS.items() if importlib.util.find_spec(package) is not None]
    return (*METHOD_ORDER, *peers)


def known_methods() -> tuple[str, ...]:
    """Gradient methods of the core's registry now (``register_method`` adds to it), in display order."""
    from relgrad_core import method_names

    return tuple(method_names())


def uninstalled_methods() -> dict[str, str]:
    """Methods the core knows by name whose package is missing here (the peers) -> what to install."""
    from relgrad_core import unavailable_methods

    return unavailable_methods()


def known_datasets() -> tuple[str, ...]:
    """Data sets of the core's registry now (``register_dataset`` adds to it)."""
    from relgrad_core import dataset_names

    return tuple(dataset_names())


def known_optimizers() -> tuple[str, ...]:
    from relgrad_core.training import OPTIMIZERS

    return tuple(OPTIMIZERS)


def _one_of(kind: str, known: Callable[[], tuple[str, ...]], value: str) -> str:
    checked = _CHECKED.get()
    if checked is not None and kind not in checked:
        return value
    names = known()
    if value not in names:
        raise ValueError(f"unknown {kind} {value!r} (choose from {', '.join(names)})")
    return value


def method(value: str) -> str:
    """A registered method; a mistyped one is refused without the registry where that is possible."""
    checked = _CHECKED.get()
    if checked is not None and "method" not in checked:
        return value
    free = registry_free_methods()
    if free is not None and value in free:
        return value
    if free is not None and value not in PEER_METHODS:
        raise ValueError(f"unknown method {value!r} (choose from {', '.join(free)})")
    if value not in known_methods() and value in (missing := uninstalled_methods()):
        raise ValueError(f"method {value!r} is not installed: {missing[value]}")
    return _one_of("method", known_methods, value)


def dataset(value: str) -> str:
    return value if value == FILE_DATASET else _one_of("dataset", known_datasets, value)


def optimizer(value: str) -> str:
    return _one_of("optimizer", known_optimizers, value)
