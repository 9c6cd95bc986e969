"""Field types of the typed config: bounded numbers, and names checked against the core's registries.

Method, data set and optimizer names are looked up *when a config is validated*, so a method or data set
registered in Python (or by a plugin) is accepted without editing this package.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, PlainValidator, Strict

#: Largest dimension a config accepts (a 2-layer float32 flow at this D holds 8 TiB of weights: the
#: memory check refuses far smaller D; this bound only keeps absurd numbers out of the arithmetic).
MAX_DIM = 1 << 20
#: Largest learning rate accepted: larger values are typos (the divergence tests use 1e12 on purpose).
MAX_LR = 1e12
#: ``data.dataset`` of a config whose data come from ``data.file`` (``--data-file``).
FILE_DATASET = "file"


# --------------------------------------------------------------------------------------------
# Names from the core's registries, read when a config is validated
# --------------------------------------------------------------------------------------------
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


def _one_of(kind: str, known: tuple[str, ...], value: str) -> str:
    if value not in known:
        raise ValueError(f"unknown {kind} {value!r}; known: {', '.join(known)}")
    return value


def _method(value: str) -> str:
    known = known_methods()
    if value not in known and value in (missing := uninstalled_methods()):
        raise ValueError(f"method {value!r} is not installed: {missing[value]}")
    return _one_of("method", known, value)


def _dataset(value: str) -> str:
    return value if value == FILE_DATASET else _one_of("dataset", known_datasets(), value)


def _optimizer(value: str) -> str:
    return _one_of("optimizer", known_optimizers(), value)


def _device(value: str) -> str:
    head, _, index = value.partition(":")
    if (head in ("auto", "cpu", "mps") and not index) or (head == "cuda" and (not index or index.isdigit())):
        return value
    raise ValueError(f"unknown device {value!r}; use auto, cpu, cuda, cuda:N or mps")


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):  # YAML's yes/true would otherwise be read as 1.0
        raise ValueError(f"expected a number, got {value}")
    return value


def _budget(value: Any) -> float | dict[str, float] | None:
    """``budget_s``: null, seconds for every method, or a mapping method -> seconds (all > 0, finite)."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {_method(str(k)): _seconds(v, f"{k}: ") for k, v in value.items()}
    return _seconds(value, "")


def _seconds(value: Any, label: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{label}expected seconds (a number), got {value!r}")
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"{label}expected seconds (a number), got {value!r}") from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{label}must be a finite number of seconds > 0, got {value!r}")
    return seconds


Count = Annotated[int, Strict(), Field(ge=1)]  # strict: no bools, floats or strings
NonNegInt = Annotated[int, Strict(), Field(ge=0)]
Dim = Annotated[int, Strict(), Field(ge=1, le=MAX_DIM)]
Number = Annotated[float, BeforeValidator(_not_bool), Field(allow_inf_nan=False)]
Positive = Annotated[Number, Field(gt=0)]
NonNegative = Annotated[Number, Field(ge=0)]
LearningRate = Annotated[Number, Field(gt=0, le=MAX_LR)]
Alpha = Annotated[Number, Field(gt=0, le=1)]  # slope of the smooth leaky ReLU: invertible for α > 0
MethodName = Annotated[str, Strict(), AfterValidator(_method)]
Budget = Annotated[float | dict[str, float] | None, PlainValidator(_budget)]
DatasetName = Annotated[str, Strict(), AfterValidator(_dataset)]
OptimizerName = Annotated[str, Strict(), AfterValidator(_optimizer)]
DeviceName = Annotated[str, Strict(), AfterValidator(_device)]
