"""The config a ``relgrad`` command line asks for: short flags, ``--set``, presets, and the checks
that come before Ray or MLflow (data file, device, memory).

An error names what the user wrote: the flag (``--dims: must be >= 1, got 0``), ``--set path``, or
the preset and its YAML key (``--preset my.yaml: scaling.dims[0]: ...``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from study.kinds import RUNS, SCALING, SWEEPS, TRAIN, TUNE, SweepKind
from study.parsing import (
    ConfigError,
    parse_assignment,
    parse_float_list,
    parse_int_list,
    parse_str_list,
    parse_yaml_value,
)

if TYPE_CHECKING:
    from study import preflight
    from study.config import Section

DEFAULT_PRESET = "quick"


# --------------------------------------------------------------------------------------------
# Short flags: each is ``--set <path>=<value>`` for the commands it applies to
# --------------------------------------------------------------------------------------------
def _absolute(text: str) -> str:
    return str(Path(text).expanduser().resolve())


@dataclass(frozen=True)
class Flag:
    """``option VALUE`` sets the config field ``paths[kind]`` of each kind it applies to to
    ``parse(VALUE)`` (read as YAML by default); a value ``parse`` refuses is an error naming ``option``."""

    option: str
    paths: dict[SweepKind, str]
    help: str = ""
    parse: Callable[[str], Any] = parse_yaml_value

    def value(self, text: str) -> Any:
        try:
            return self.parse(text)
        except ConfigError as exc:
            raise ConfigError(f"{self.option}: {exc}") from None


def _on(kinds: Sequence[SweepKind], path: str) -> dict[SweepKind, str]:
    return dict.fromkeys(kinds, path)


FLAGS: tuple[Flag, ...] = (
    Flag("--methods", {SCALING: "methods"}, "e.g. relative,ordinary", parse_str_list),
    Flag("--dims", {SCALING: "dims"}, "e.g. 64,128,256 or 64:1024:x2", parse_int_list),
    Flag("--depths", {SCALING: "depths"}, "e.g. 1,2", parse_int_list),
    Flag("--batch-sizes", {SCALING: "batch_sizes"}, "e.g. 64,128", parse_int_list),
    Flag("--lrs", {SCALING: "lrs"}, "e.g. 1e-4,1e-3 or 1e-4:1e-2:x10", parse_float_list),
    Flag("--budget-s", {SCALING: "budget_s"}, "per-step budget in seconds"),
    Flag("--method", {TUNE: "space.method", TRAIN: "method"}, "gradient method", str),
    Flag("--samples", {TUNE: "space.samples"}, "number of trials"),
    Flag("--dim", {TUNE: "data.dim", TRAIN: "dim"}, "dimension of teacher/noise data"),
    Flag("--depth", {TRAIN: "depth"}),
    Flag("--batch-size", {TRAIN: "batch_size"}),
    Flag("--lr", {TRAIN: "lr"}),
    Flag("--alpha", {SCALING: "alpha", TRAIN: "alpha"}, "slope of the smooth leaky ReLU"),
    Flag("--seed", {SCALING: "seed", TUNE: "space.seed", TRAIN: "seed"}),
    Flag("--dataset", _on(RUNS, "data.dataset"), "a name of the core's data registry", str),
    Flag("--data-file", _on(RUNS, "data.file"), "your data: .npy, .npz (train/val/test) or .csv", _absolute),
    Flag("--n-train", _on(RUNS, "data.n_train"), "training rows of generated data"),
    Flag("--epochs", _on(RUNS, "train.epochs"), "evaluations per trial"),
    Flag("--steps", _on(RUNS, "train.max_steps"), "training steps per trial (max)"),
    Flag("--steps-per-epoch", _on(RUNS, "train.steps_per_epoch"), "steps between evaluations"),
    Flag("--patience", _on(RUNS, "train.patience"), "evaluations without improvement before stopping"),
    Flag("--train-budget-s", _on(RUNS, "train.time_budget_s"), "wall-clock cap on training per trial"),
    Flag("--optimizer", _on(RUNS, "train.optimizer"), "one of the core's optimizers", str),
    Flag("--device", _on(RUNS, "train.device"), "auto | cpu | cuda | cuda:N", str),
    Flag("--dtype", _on(RUNS, "train.dtype"), "float32 | float64", str),
    Flag("--cpus-per-trial", _on(SWEEPS, "resources.cpus_per_trial")),
    Flag("--gpus-per-trial", _on(SWEEPS, "resources.gpus_per_trial")),
    Flag("--max-concurrent", _on(SWEEPS, "resources.max_concurrent"), "at most this many trials at once"),
)


def dest(flag: Flag) -> str:
    return flag.option.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class Override:
    """``path = value``, set on the command line by ``origin`` (``--dims`` or ``--set train.epochs``)."""

    path: str
    value: Any
    origin: str

    def set_field(self, error: ConfigError) -> bool:
        """Whether ``error`` (a config validation error) is about the value this override set."""
        field = error.field
        if field is None:
            return False
        if error.unknown_keys:  # the section named by the error lacks the key this override named
            return self.path.rpartition(".")[0] == field
        return field == self.path or field.startswith((f"{self.path}.", f"{self.path}["))


def overrides_of(kind: SweepKind, args: argparse.Namespace) -> list[Override]:
    """The short flags given, then every ``--set`` (in order: a later one wins); values parsed here,
    so a bad list or range is refused before any preset is read."""
    given = [(flag, getattr(args, dest(flag))) for flag in FLAGS if kind in flag.paths]
    pairs = [Override(f.paths[kind], f.value(value), f.option) for f, value in given if value is not None]
    for text in args.set or []:
        path, value = parse_assignment(text)
        pairs.append(Override(path, value, f"--set {path}"))
    return pairs


# --------------------------------------------------------------------------------------------
# Config assembly (preset or defaults + flags + --set), validated before anything runs
# --------------------------------------------------------------------------------------------
def build_config(kind: SweepKind, args: argparse.Namespace) -> Any:
    """The validated config of ``kind``: its base (a preset's section, or SingleRun's defaults) + overrides.

    Validated twice: first without the core's registries (a mistake in any other value is refused
    without importing torch), then with them (method, data set and optimizer names). An error names
    the flag that set the bad value, else the preset and its YAML key.
    """
    from study.config import config_class, from_dict, registry_names_deferred, with_overrides
    from study.preflight import user_grid

    overrides = overrides_of(kind, args)
    pairs = user_grid(kind, [(o.path, o.value) for o in overrides])  # --dims sets preset caps aside
    others: list[Section] = []
    with registry_names_deferred():
        if kind.sweep:
            preset = _load_preset(args.preset or DEFAULT_PRESET)
            base: Section = preset.section(kind)
            others = [preset.section(k) for k in SWEEPS if k is not kind]
        else:
            base = config_class(kind)()
        cfg = _naming_the_flag(lambda: with_overrides(base, pairs), overrides, args)
    with registry_names_deferred(checked=["method"]):  # fast while only built-in methods exist
        _naming_the_flag(lambda: from_dict(type(cfg), cfg.model_dump()), overrides, args)
    cfg = _naming_the_flag(lambda: from_dict(type(cfg), cfg.model_dump()), overrides, args)
    for other in others:  # the preset's other section is checked too: a preset is valid as a whole
        _naming_the_flag(lambda other=other: from_dict(type(other), other.model_dump()), [], args)
    return _with_data_file(cfg, kind, args)


def _load_preset(name: str) -> Any:
    from study.config import load_preset

    try:
        return load_preset(name)
    except ConfigError as exc:
        raise ConfigError(f"--preset {name}: {exc.problem if exc.field is None else exc}") from None


def _naming_the_flag(build: Callable[[], Any], overrides: list[Override], args: argparse.Namespace) -> Any:
    """``build()``; a validation error is re-worded to name the flag (or preset) that set the value."""
    try:
        return build()
    except ConfigError as exc:
        origin = next((o.origin for o in reversed(overrides) if o.set_field(exc)), None)
        if origin is not None:
            raise ConfigError(f"{origin}: {exc.problem}") from None
        if exc.field and hasattr(args, "preset"):
            raise ConfigError(f"--preset {args.preset or DEFAULT_PRESET}: {exc}") from None
        raise


def _with_data_file(cfg: Any, kind: SweepKind, args: argparse.Namespace) -> Any:
    """A data file sets the dimension: read it once here so that a bad file ends the run in one line."""
    from study import preflight
    from study.config import with_overrides

    if cfg.data.file is None:
        return cfg
    for dest in ("dataset", "dims", "dim"):
        if getattr(args, dest, None) is not None:
            raise ConfigError(
                f"--{dest} and --data-file: give one (the file sets the data and its dimension)"
            )
    data = preflight.read_data_file(cfg.data.file, seed=_seed(cfg), standardize=cfg.data.standardize)
    dim = {SCALING: ("dims", [data.dim]), TUNE: ("data.dim", data.dim), TRAIN: ("dim", data.dim)}[kind]
    return with_overrides(cfg, [("data.file", data.path), dim])


def _seed(cfg: Any) -> int:
    return int(cfg.space.seed if hasattr(cfg, "space") else cfg.seed)


def _data_shape(kind: SweepKind, cfg: Any) -> preflight.DataShape:
    """Dimension and rows of the run's data: a file or a named set is read (once); generated data sized."""
    from study import preflight
    from study.config import SYNTHETIC_DATASETS

    if cfg.data.file is not None:
        return preflight.read_data_file(cfg.data.file, seed=_seed(cfg), standardize=cfg.data.standardize)
    if cfg.data.dataset not in SYNTHETIC_DATASETS:
        return preflight.named_dataset(cfg.data, _seed(cfg), f"{cfg.where}.data.dataset")
    dim = {SCALING: None, TUNE: cfg.data.dim, TRAIN: getattr(cfg, "dim", None)}[kind]
    return preflight.DataShape(dim or 0, preflight.data_rows(cfg.data))


def _shapes(kind: SweepKind, cfg: Any, data: preflight.DataShape) -> list[preflight.Shape]:
    """The largest trial of each method (the memory check needs no other)."""
    from study.preflight import Shape

    if kind is SCALING:
        depth, batch = max(cfg.depths), max(cfg.batch_sizes)
        return [Shape(m, max(cfg.dims_of(m)), depth, batch, data.rows) for m in cfg.methods if cfg.dims_of(m)]
    if kind is TUNE:
        space = cfg.space
        return [Shape(space.method, data.dim, max(space.depths), max(space.batch_sizes), data.rows)]
    return [Shape(cfg.method, data.dim, cfg.depth, cfg.batch_size, data.rows)]


def preflight_checks(kind: SweepKind, cfg: Any, args: argparse.Namespace) -> preflight.DataShape:
    """The data's shape (a file or a named set read once), then device and memory on this machine (for
    embedded runs; a cluster's device is checked once Ray is up)."""
    from study import preflight

    data = _data_shape(kind, cfg)
    if not args.address:
        preflight.check_device(cfg.train.device, f"{cfg.where}.train.device")
        if kind.sweep:
            res = cfg.resources
            preflight.check_local_resources(res.cpus_per_trial, res.gpus_per_trial, args.num_cpus)
        preflight.check_memory(_shapes(kind, cfg, data), cfg.train)
    return data


def refuse_changes(kind: SweepKind, args: argparse.Namespace) -> None:
    """A resumed sweep runs the grid and data it was started with: a flag that would change them is an
    error (applying it to half a sweep would mix two studies in one), not silently ignored."""
    given = [f.option for f in FLAGS if kind in f.paths and getattr(args, dest(f)) is not None]
    given += ["--set"] * bool(args.set) + ["--preset"] * (args.preset is not None)
    if given:
        raise ConfigError(
            f"--resume runs sweep {args.name!r} with the config it was started with; {', '.join(given)} "
            "would change it: drop them, or start a new sweep with another --name"
        )
