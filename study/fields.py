"""Field types of the typed config: bounded numbers, and names checked against the core's registries.

Method, data set and optimizer names are looked up *when a config is validated* (:mod:`study.names`), so a
method or data set registered in Python (or by a plugin) is accepted without editing this package.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, PlainValidator, Strict

from study import names
from study.names import FILE_DATASET as FILE_DATASET  # re-exported: the name lives in study.names

#: Largest dimension a config accepts (a 2-layer float32 flow at this D holds 8 TiB of weights: the
#: memory check refuses far smaller D; this bound only keeps absurd numbers out of the arithmetic).
MAX_DIM = 1 << 20
#: Largest learning rate accepted: larger values are typos (the divergence tests use 1e12 on purpose).
MAX_LR = 1e12


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
        return {names.method(str(k)): _seconds(v, f"{k}: ") for k, v in value.items()}
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
MethodName = Annotated[str, Strict(), AfterValidator(names.method)]
Budget = Annotated[float | dict[str, float] | None, PlainValidator(_budget)]
DatasetName = Annotated[str, Strict(), AfterValidator(names.dataset)]
OptimizerName = Annotated[str, Strict(), AfterValidator(names.optimizer)]
DeviceName = Annotated[str, Strict(), AfterValidator(_device)]
