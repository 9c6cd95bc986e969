"""Methods and datasets of your own, in every process of a sweep: ``RELGRAD_PLUGINS``.

A plugin is an importable module that calls :func:`~relgrad_core.register_method` or
:func:`~relgrad_core.register_dataset` at import. Registering in the driver alone is not enough for a sweep:
its trials run in Ray worker processes, which import ``relgrad_core`` afresh. ``RELGRAD_PLUGINS`` (module
names, comma-separated) is read when ``relgrad_core`` is imported, in the driver and in every worker, so a
plugin's names are known to config validation, to the trials and to the report alike::

    RELGRAD_PLUGINS=my_methods relgrad scaling --methods relative,my_method

The embedded Ray inherits the variable; for a cluster (``--address``) the CLI passes it to the job's
workers, and the module must be importable on every node (installed, or on ``PYTHONPATH``).
"""

from __future__ import annotations

import importlib
import os

ENV_VAR = "RELGRAD_PLUGINS"


def plugin_modules(value: str | None = None) -> list[str]:
    """The module names in ``value`` (default ``$RELGRAD_PLUGINS``), blanks dropped."""
    text = os.environ.get(ENV_VAR, "") if value is None else value
    return [name.strip() for name in text.split(",") if name.strip()]


def load_plugins(value: str | None = None) -> list[str]:
    """Import each plugin module once (a module already imported is not re-run); the names loaded.

    Raises ``ImportError`` naming the variable, the module and the exception, in one line, when a module
    cannot be found or raises anything while it is imported (its own error is chained as the cause).
    """
    names = plugin_modules(value)
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ImportError(f"{ENV_VAR}: cannot import plugin module {name!r}: {_one_line(exc)}") from exc
        except Exception as exc:  # the plugin's own code failed: name it and what it raised
            raise ImportError(
                f"{ENV_VAR}: plugin module {name!r} raised {type(exc).__name__} at import: {_one_line(exc)}"
            ) from exc
    return names


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
