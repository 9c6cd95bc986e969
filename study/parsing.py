"""Command-line values for configs: lists and ranges, ``--set path=value``, and one-line errors.

Torch-free and pydantic-only, so the CLI can refuse a bad value before anything heavy is imported.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

#: The command's name, as the user types it (hints quote whole commands).
PROG = "relgrad"
#: Exit codes of the ``relgrad`` command: every trial ended (ok, diverged or skipped), some trial failed,
#: a usage or config error (one line, before any work), interrupted (resumable).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: The presets (package data next to this module; a plain path also works under editable installs).
PRESET_DIR = Path(__file__).resolve().parent / "presets"

#: Most values one list (``--dims``, ``--lrs``, ...) may expand to; a range is counted before it is built.
MAX_LIST_ITEMS = 1000


def preset_names() -> list[str]:
    """The built-in presets, ``study/presets/<name>.yaml``."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


class ConfigError(ValueError):
    """A sweep configuration is invalid; the message names the field and the problem (one line).

    From a config's validation it also carries ``field``, the dotted path of the bad value within the
    section (``dims[0]``, ``train.epochs``; ``""`` for the section itself), ``problem``, the message
    without the field, and ``unknown_keys`` when the problem is keys the section does not have, so
    that the CLI can name the flag that set the value instead (``--dims: must be >= 1, got 0``).
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        problem: str | None = None,
        unknown_keys: bool = False,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.problem = problem if problem is not None else message
        self.unknown_keys = unknown_keys


def first_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's message (its type's name when it has none): what a
    one-line error quotes of a failure it reports."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def error_line(exc: BaseException) -> str:
    """``Type: first line`` of an exception (its type alone when it has no message)."""
    line = first_line(exc)
    return type(exc).__name__ if line == type(exc).__name__ else f"{type(exc).__name__}: {line}"


# --------------------------------------------------------------------------------------------
# Sweep names
# --------------------------------------------------------------------------------------------
#: Sweep names: they tag MLflow runs, name the Tune results folder and go into filter strings, so only
#: a safe charset: a letter or digit first, then letters, digits, ``.``, ``_``, ``-`` (at most 128).
SWEEP_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_sweep_name(name: str) -> str:
    """``name`` if it is a valid sweep name, else ConfigError naming the rule."""
    if not isinstance(name, str) or not SWEEP_NAME_RE.fullmatch(name) or ".." in name:
        raise ConfigError(
            f"sweep name {name!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit (no '..')"
        )
    return name


# --------------------------------------------------------------------------------------------
# Lists and ranges
# --------------------------------------------------------------------------------------------
def _at(what: str) -> str:
    """The prefix naming where a bad value came from (``--dims: ``), when the caller says."""
    return f"{what}: " if what else ""


_RANGE = re.compile(r"^\s*([^:]+):([^:]+)(?::(x?)([^:]+))?\s*$")


def parse_int_list(text: str, what: str = "") -> list[int]:
    """Parse ``"64,128"`` or a range ``"64:1024:x2"`` (geometric) / ``"32:128:32"`` (arithmetic).

    Ranges include both ends when the step lands on the upper end; ``"a:b"`` steps by one. A range is
    sized before it is expanded: more than :data:`MAX_LIST_ITEMS` values is an error.
    """
    values: list[int] = []
    for part in parse_str_list(text):
        match = _RANGE.match(part)
        if match is None:
            values.append(_to_int(part, what))
            continue
        start, stop = _to_int(match.group(1), what), _to_int(match.group(2), what)
        geometric, step = match.group(3) == "x", _to_float(match.group(4) or "1", what)
        if stop < start:
            raise ConfigError(f"{_at(what)}range {part!r} ends before it starts")
        if geometric:
            if step <= 1.0:
                raise ConfigError(f"{_at(what)}geometric range {part!r} needs a factor > 1")
            if start <= 0:
                raise ConfigError(f"{_at(what)}geometric range {part!r} must start above 0")
            count = math.floor(math.log((stop + 0.5) / start) / math.log(step)) + 1
        else:
            if step <= 0 or step != int(step):
                raise ConfigError(f"{_at(what)}range {part!r} needs a positive integer step")
            count = (stop - start) // int(step) + 1
        _check_size(len(values) + count, part, what)
        current = float(start)
        while round(current) <= stop:
            if not values or values[-1] != round(current):  # a small factor can round to a repeat
                values.append(round(current))
            current = current * step if geometric else current + step
    if not values:
        raise ConfigError(f"{_at(what)}empty list {text!r}")
    return values


def parse_float_list(text: str, what: str = "") -> list[float]:
    """Parse ``"1e-3,3e-3"`` or a log range ``"1e-4:1e-2:x10"`` (values rounded to 6 digits)."""
    values: list[float] = []
    for part in parse_str_list(text):
        match = _RANGE.match(part)
        if match is None:
            values.append(_to_float(part, what))
            continue
        start, stop = _to_float(match.group(1), what), _to_float(match.group(2), what)
        if match.group(3) != "x" or start <= 0:
            raise ConfigError(f"{_at(what)}float ranges must be geometric from > 0, e.g. 1e-4:1e-2:x10")
        factor = _to_float(match.group(4), what)
        if factor <= 1.0:
            raise ConfigError(f"{_at(what)}geometric range {part!r} needs a factor > 1")
        if stop < start:
            raise ConfigError(f"{_at(what)}range {part!r} ends before it starts")
        count = math.floor((math.log(stop) - math.log(start)) / math.log(factor)) + 1
        _check_size(len(values) + count, part, what)
        current = start
        while current <= stop * (1 + 1e-9):
            values.append(float(f"{current:.6g}"))
            current *= factor
    if not values:
        raise ConfigError(f"{_at(what)}empty list {text!r}")
    return values


def parse_str_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]`` (blank items dropped)."""
    return [part.strip() for part in str(text).split(",") if part.strip()]


def _check_size(count: int, part: str, what: str) -> None:
    if count > MAX_LIST_ITEMS:
        raise ConfigError(f"{_at(what)}{part!r} gives {count} values; at most {MAX_LIST_ITEMS} per list")


def _to_float(text: str, what: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise ConfigError(f"{_at(what)}{text.strip()!r} is not a number") from None
    if not math.isfinite(number):
        raise ConfigError(f"{_at(what)}{text.strip()!r} is not a finite number")
    return number


def _to_int(text: str, what: str) -> int:
    number = _to_float(text, what)
    if number != int(number):
        raise ConfigError(f"{_at(what)}{text.strip()!r} is not an integer")
    return int(number)


# --------------------------------------------------------------------------------------------
# --set section.field=value
# --------------------------------------------------------------------------------------------
_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z0-9_]\w*)*$")


def parse_yaml_value(text: str, what: str = "") -> Any:
    """A command-line value read as YAML (``3`` -> 3, ``null`` -> None, ``[8, 16]`` -> a list)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"{_at(what)}{text!r} is not a valid YAML value") from None


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"train.epochs=3"`` -> ``("train.epochs", 3)``: the value read as YAML."""
    path, sep, value = text.partition("=")
    path = path.strip()
    if not sep or not _PATH.match(path):
        raise ConfigError(f"--set {text!r}: expected section.field=value, e.g. train.epochs=3")
    return path, parse_yaml_value(value.strip(), f"--set {path}")


def apply_overrides(raw: dict[str, Any], overrides: list[tuple[str, Any]], where: str) -> None:
    """Set each ``(dotted.path, value)`` in the nested dict ``raw`` (in order: later ones win)."""
    for path, value in overrides:
        node, parts = raw, path.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if not isinstance(child, dict):
                section = ".".join([where, *parts[: depth + 1]])
                raise ConfigError(f"--set {path}: {section} is not a section (no field {parts[depth + 1]!r})")
            node = child
        node[parts[-1]] = value


# --------------------------------------------------------------------------------------------
# One line per validation error
# --------------------------------------------------------------------------------------------
_TEMPLATES = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "finite_number": "must be a finite number",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list, e.g. [a, b]",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "too_long": "has too many values (at most {max_length})",
    "literal_error": "must be {expected}",
}


def _path(where: str, loc: tuple[Any, ...]) -> str:
    text = where
    for part in loc:
        if part == "[key]":
            continue
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _fields_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (nested) model at ``loc``, for 'known:' hints."""
    for part in loc:
        field = model.model_fields.get(str(part)) if model is not None else None
        annotation = getattr(field, "annotation", None)
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return sorted(model.model_fields) if model is not None else []


def _message(error: Any, model: type[BaseModel] | None) -> str:
    kind, value = error["type"], error.get("input")
    ctx = {k: f"{v:g}" if isinstance(v, float) else v for k, v in (error.get("ctx") or {}).items()}
    shown = f"{value:g}" if isinstance(value, float) else repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "missing":
        return "is required"
    if kind == "too_short":
        return "empty list (give at least one value)"
    template = _TEMPLATES.get(kind)
    text = template.format(**ctx) if template else error["msg"]
    return f"{text}, got {shown}"


def config_error(exc: ValidationError, where: str, model: type[BaseModel] | None = None) -> ConfigError:
    """The first problem of a ValidationError as ``where.field: message`` (+ how many more), with the
    field and the problem apart (see :class:`ConfigError`)."""
    errors = exc.errors()
    extra = [e for e in errors if e["type"] == "extra_forbidden"]
    if extra:  # unknown keys of one section, named together with the known ones
        loc = extra[0]["loc"][:-1]
        keys = [str(e["loc"][-1]) for e in extra if e["loc"][:-1] == loc]
        known = _fields_at(model, loc)
        problem = f"unknown keys {keys}" + (f"; known: {', '.join(known)}" if known else "")
        rest = len(errors) - len(keys)
    else:
        loc = errors[0]["loc"]
        problem = _message(errors[0], model)
        rest = len(errors) - 1
    problem += f" (and {rest} more problem{'s' * (rest > 1)})" if rest else ""
    field = _path("", loc).lstrip(".")
    return ConfigError(
        f"{_path(where, loc)}: {problem}", field=field, problem=problem, unknown_keys=bool(extra)
    )


def describe(exc: ValidationError, where: str, model: type[BaseModel] | None = None) -> str:
    """The first problem of a ValidationError as one line: ``where.field: message`` (+ how many more)."""
    return str(config_error(exc, where, model))
