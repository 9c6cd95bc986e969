"""Typed sweep configurations, YAML presets and command-line overrides.

Everything a sweep needs is checked here, before Ray or MLflow are touched: an unknown method or
data set, a dimension below one, an empty grid or a negative resource request raises
:class:`ConfigError` with a message that names the offending field.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Kept in sync with relgrad_core.METHODS / DATASETS; the core is imported lazily (see `known_*`)
# so that parsing a config does not pay for importing torch.
FALLBACK_METHODS: tuple[str, ...] = ("relative", "ordinary", "autodiff", "jacobian", "mlp", "lu")
SYNTHETIC_DATASETS: tuple[str, ...] = ("teacher", "noise")
FALLBACK_DATASETS: tuple[str, ...] = (
    *SYNTHETIC_DATASETS,
    "digits",
    "moons",
    "rings",
    "checkerboard",
    "sine",
    "trimodal",
    "2spirals",
    "8gaussians",
    "power",
    "gas",
    "hepmass",
    "miniboone",
    "bsds300",
    "mnist",
)


class ConfigError(ValueError):
    """A sweep configuration is invalid; the message names the field and the problem."""


def known_methods() -> tuple[str, ...]:
    try:
        from relgrad_core import METHODS
    except ImportError:  # the core not installed: fall back on the documented list
        return FALLBACK_METHODS
    return tuple(METHODS)


def known_datasets() -> tuple[str, ...]:
    try:
        from relgrad_core import DATASETS
    except ImportError:
        return FALLBACK_DATASETS
    return tuple(DATASETS)


# --------------------------------------------------------------------------------------------
# Parsing of list / range arguments
# --------------------------------------------------------------------------------------------
_RANGE = re.compile(r"^\s*([^:]+):([^:]+)(?::(x?)([^:]+))?\s*$")


def parse_int_list(text: str, what: str = "value") -> list[int]:
    """Parse ``"64,128"`` or a range ``"64:1024:x2"`` (geometric) / ``"32:128:32"`` (arithmetic).

    Ranges include both ends when the step lands on the upper end; ``"a:b"`` steps by one.
    """
    values: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        match = _RANGE.match(part)
        if match is None:
            values.append(_to_int(part, what))
            continue
        start, stop = _to_int(match.group(1), what), _to_int(match.group(2), what)
        geometric, step_text = match.group(3) == "x", match.group(4) or "1"
        step = _to_float(step_text, what)
        if geometric and step <= 1.0:
            raise ConfigError(f"{what}: geometric range {part!r} needs a factor > 1")
        if not geometric and (step <= 0 or step != int(step)):
            raise ConfigError(f"{what}: range {part!r} needs a positive integer step")
        if stop < start:
            raise ConfigError(f"{what}: range {part!r} ends before it starts")
        current = float(start)
        while round(current) <= stop:
            values.append(round(current))
            current = current * step if geometric else current + step
            if geometric and start <= 0:
                raise ConfigError(f"{what}: geometric range {part!r} must start above 0")
    if not values:
        raise ConfigError(f"{what}: empty list {text!r}")
    return values


def parse_float_list(text: str, what: str = "value") -> list[float]:
    """Parse ``"1e-3,3e-3"`` or a log range ``"1e-4:1e-2:x10"``."""
    values: list[float] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        match = _RANGE.match(part)
        if match is None:
            values.append(_to_float(part, what))
            continue
        start, stop = _to_float(match.group(1), what), _to_float(match.group(2), what)
        if match.group(3) != "x" or start <= 0:
            raise ConfigError(f"{what}: float ranges must be geometric, e.g. 1e-4:1e-2:x10")
        factor = _to_float(match.group(4), what)
        if factor <= 1.0:
            raise ConfigError(f"{what}: geometric range {part!r} needs a factor > 1")
        current = start
        while current <= stop * (1 + 1e-9):
            values.append(float(f"{current:.6g}"))
            current *= factor
    if not values:
        raise ConfigError(f"{what}: empty list {text!r}")
    return values


def parse_str_list(text: str) -> list[str]:
    return [part.strip() for part in str(text).split(",") if part.strip()]


def _to_int(text: str, what: str) -> int:
    try:
        number = float(text)
    except ValueError:
        raise ConfigError(f"{what}: {text.strip()!r} is not a number") from None
    if number != int(number):
        raise ConfigError(f"{what}: {text.strip()!r} is not an integer")
    return int(number)


def _to_float(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{what}: {text.strip()!r} is not a number") from None


# --------------------------------------------------------------------------------------------
# Config dataclasses
# --------------------------------------------------------------------------------------------
@dataclass
class Resources:
    """What one trial asks Ray for."""

    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None  # None: as many as the resources allow
    max_failures: int = 2  # retries of a trial whose worker died (FailureConfig)


@dataclass
class DataConfig:
    """The data a trial trains on; ``teacher``/``noise`` are generated at the trial's dimension."""

    dataset: str = "teacher"
    n_train: int = 2000
    n_val: int = 500
    n_test: int = 500
    teacher_depth: int = 2
    root: str | None = None  # local files of the real data sets ($RELGRAD_DATA otherwise)
    dim: int | None = None  # dimension of synthetic data in an HPO sweep


@dataclass
class TrainConfig:
    """How long and how a trial trains after it has been timed."""

    epochs: int = 5
    steps_per_epoch: int | None = 50  # evaluation cadence; None: a full pass over train
    max_steps: int | None = None
    time_budget_s: float | None = 60.0  # wall-clock cap on training per trial
    patience: int | None = None
    optimizer: str = "adam"
    timing_warmup: int = 2
    timing_repeats: int = 5
    dtype: str = "float32"
    device: str = "auto"


@dataclass
class ScalingConfig:
    """A grid over method × dim × depth × batch size × learning rate."""

    methods: list[str] = field(default_factory=lambda: ["relative", "ordinary"])
    dims: list[int] = field(default_factory=lambda: [32, 64, 128])
    depths: list[int] = field(default_factory=lambda: [2])
    batch_sizes: list[int] = field(default_factory=lambda: [64])
    lrs: list[float] = field(default_factory=lambda: [1e-3])
    alpha: float = 0.3
    seed: int = 0
    # Per-step budget in seconds: once a method's median step exceeds it at some D, larger D of
    # that curve are skipped. A number for every method, or a mapping method -> seconds.
    budget_s: float | dict[str, float] | None = None
    max_dim: dict[str, int] = field(default_factory=dict)  # per-method cap (jacobian is O(B·D³))
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    resources: Resources = field(default_factory=Resources)
    inject_worker_kill: str | None = None  # testing only: marker file; first trial kills itself

    def budget_for(self, method: str) -> float | None:
        if isinstance(self.budget_s, dict):
            value = self.budget_s.get(method)
            return None if value is None else float(value)
        return None if self.budget_s is None else float(self.budget_s)

    def points(self) -> list[dict[str, Any]]:
        """The grid, as trial parameter dicts, in (method, depth, batch, lr, dim) order."""
        grid: list[dict[str, Any]] = []
        for method in self.methods:
            cap = self.max_dim.get(method)
            for depth in self.depths:
                for batch_size in self.batch_sizes:
                    for lr in self.lrs:
                        for dim in sorted(set(self.dims)):
                            if cap is not None and dim > cap:
                                continue
                            grid.append(
                                {
                                    "method": method,
                                    "dim": dim,
                                    "depth": depth,
                                    "batch_size": batch_size,
                                    "lr": lr,
                                    "alpha": self.alpha,
                                    "seed": self.seed,
                                }
                            )
        return grid


@dataclass
class TuneSpace:
    """The HPO search space (Optuna TPE) and the ASHA schedule."""

    method: str = "relative"
    lr_min: float = 1e-4
    lr_max: float = 1e-2
    depths: list[int] = field(default_factory=lambda: [1, 2, 3])
    alpha_min: float = 0.01
    alpha_max: float = 0.5
    batch_sizes: list[int] = field(default_factory=lambda: [32, 64, 128])
    samples: int = 20
    grace_period: int = 1  # ASHA: evaluations before a trial can be stopped
    reduction_factor: int = 3
    seed: int = 0


@dataclass
class HpoConfig:
    space: TuneSpace = field(default_factory=TuneSpace)
    data: DataConfig = field(default_factory=lambda: DataConfig(dataset="digits"))
    train: TrainConfig = field(default_factory=TrainConfig)
    resources: Resources = field(default_factory=Resources)
    retrain_best: bool = True


@dataclass
class Preset:
    name: str
    scaling: ScalingConfig
    tune: HpoConfig


# --------------------------------------------------------------------------------------------
# Loading and overriding
# --------------------------------------------------------------------------------------------
# Next to this module (package data); a plain path also works under editable installs.
PRESET_DIR = Path(__file__).resolve().parent / "presets"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(name_or_path: str) -> Preset:
    """Load a preset by name (``study/presets/<name>.yaml``) or from a YAML file path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        text, name = path.read_text(), path.stem
    else:
        resource = PRESET_DIR / f"{name_or_path}.yaml"
        if not resource.is_file():
            raise ConfigError(f"preset: unknown preset {name_or_path!r}; known: {', '.join(preset_names())}")
        text, name = resource.read_text(), name_or_path
    raw = yaml.safe_load(text) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"preset {name!r}: expected a mapping at the top level")
    unknown = set(raw) - {"scaling", "tune"}
    if unknown:
        raise ConfigError(f"preset {name!r}: unknown sections {sorted(unknown)}")
    scaling = from_dict(ScalingConfig, raw.get("scaling") or {}, "scaling")
    tune = from_dict(HpoConfig, raw.get("tune") or {}, "tune")
    return Preset(name=name, scaling=scaling, tune=tune)


def from_dict(cls: type, raw: dict[str, Any], where: str) -> Any:
    """Build dataclass ``cls`` from a nested dict, rejecting unknown keys by name."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(raw) - set(fields)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    nested = {"data": DataConfig, "train": TrainConfig, "resources": Resources, "space": TuneSpace}
    for key, value in raw.items():
        if key in nested and isinstance(value, dict):
            kwargs[key] = from_dict(nested[key], value, f"{where}.{key}")
        else:
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:  # pragma: no cover - guarded by the key check above
        raise ConfigError(f"{where}: {exc}") from None


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"train": {"epochs": 5}}`` -> ``{"train.epochs": "5"}`` (for MLflow params)."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, list):
            flat[name] = ",".join(str(v) for v in value)
        else:
            flat[name] = str(value)
    return flat


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------
def _check_positive_ints(values: list[int], what: str, minimum: int = 1) -> None:
    if not values:
        raise ConfigError(f"{what}: empty list")
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool):
            raise ConfigError(f"{what}: {v!r} is not an integer")
        if v < minimum:
            raise ConfigError(f"{what}: {v} < {minimum}")


def _check_method(method: str, where: str) -> None:
    methods = known_methods()
    if method not in methods:
        raise ConfigError(f"{where}: unknown method {method!r}; known: {', '.join(methods)}")


def _check_data(data: DataConfig, where: str) -> None:
    datasets = known_datasets()
    if data.dataset not in datasets:
        raise ConfigError(f"{where}.dataset: unknown dataset {data.dataset!r}; known: {', '.join(datasets)}")
    for name in ("n_train", "n_val", "n_test", "teacher_depth"):
        value = getattr(data, name)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where}.{name}: must be an integer >= 1, got {value!r}")
    if data.dim is not None and (not isinstance(data.dim, int) or data.dim < 1):
        raise ConfigError(f"{where}.dim: must be an integer >= 1, got {data.dim!r}")


def _check_train(train: TrainConfig, where: str) -> None:
    if not isinstance(train.epochs, int) or train.epochs < 1:
        raise ConfigError(f"{where}.epochs: must be an integer >= 1, got {train.epochs!r}")
    for name in ("steps_per_epoch", "max_steps", "patience"):
        value = getattr(train, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"{where}.{name}: must be an integer >= 1 or null, got {value!r}")
    if train.time_budget_s is not None and not train.time_budget_s > 0:
        raise ConfigError(f"{where}.time_budget_s: must be > 0, got {train.time_budget_s!r}")
    if train.timing_repeats < 1 or train.timing_warmup < 0:
        raise ConfigError(f"{where}: timing_repeats must be >= 1 and timing_warmup >= 0")
    if train.dtype not in ("float32", "float64"):
        raise ConfigError(f"{where}.dtype: must be float32 or float64, got {train.dtype!r}")
    if train.optimizer not in ("adam", "sgd"):
        raise ConfigError(f"{where}.optimizer: must be adam or sgd, got {train.optimizer!r}")


def _check_resources(res: Resources, where: str) -> None:
    if not res.cpus_per_trial > 0:
        raise ConfigError(f"{where}.cpus_per_trial: must be > 0, got {res.cpus_per_trial!r}")
    if res.gpus_per_trial < 0:
        raise ConfigError(f"{where}.gpus_per_trial: must be >= 0, got {res.gpus_per_trial!r}")
    if res.max_concurrent is not None and res.max_concurrent < 1:
        raise ConfigError(f"{where}.max_concurrent: must be >= 1, got {res.max_concurrent!r}")
    if res.max_failures < 0:
        raise ConfigError(f"{where}.max_failures: must be >= 0, got {res.max_failures!r}")


def validate_scaling(cfg: ScalingConfig) -> None:
    if not cfg.methods:
        raise ConfigError("scaling.methods: empty list")
    for method in cfg.methods:
        _check_method(method, "scaling.methods")
    _check_positive_ints(cfg.dims, "scaling.dims")
    _check_positive_ints(cfg.depths, "scaling.depths")
    _check_positive_ints(cfg.batch_sizes, "scaling.batch_sizes")
    if not cfg.lrs:
        raise ConfigError("scaling.lrs: empty list")
    for lr in cfg.lrs:
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ConfigError(f"scaling.lrs: learning rate {lr!r} must be a finite number > 0")
    if not 0.0 < cfg.alpha <= 1.0:
        raise ConfigError(f"scaling.alpha: must be in (0, 1], got {cfg.alpha!r}")
    for method, cap in cfg.max_dim.items():
        _check_method(method, "scaling.max_dim")
        if cap < 1:
            raise ConfigError(f"scaling.max_dim.{method}: must be >= 1, got {cap}")
    budgets = cfg.budget_s.values() if isinstance(cfg.budget_s, dict) else [cfg.budget_s]
    for budget in budgets:
        if budget is not None and not float(budget) > 0:
            raise ConfigError(f"scaling.budget_s: must be > 0, got {budget!r}")
    _check_data(cfg.data, "scaling.data")
    if cfg.data.dataset not in SYNTHETIC_DATASETS:
        raise ConfigError(
            "scaling.data.dataset: scaling sweeps generate data at every D; use 'teacher' or "
            f"'noise', got {cfg.data.dataset!r}"
        )
    _check_train(cfg.train, "scaling.train")
    _check_resources(cfg.resources, "scaling.resources")
    if not cfg.points():
        raise ConfigError("scaling: the grid is empty (every dim is above the methods' max_dim)")


def validate_hpo(cfg: HpoConfig) -> None:
    space = cfg.space
    _check_method(space.method, "tune.space.method")
    if not 0 < space.lr_min <= space.lr_max:
        raise ConfigError(f"tune.space: need 0 < lr_min <= lr_max, got {space.lr_min}, {space.lr_max}")
    if not 0 < space.alpha_min <= space.alpha_max <= 1:
        raise ConfigError("tune.space: need 0 < alpha_min <= alpha_max <= 1")
    _check_positive_ints(space.depths, "tune.space.depths")
    _check_positive_ints(space.batch_sizes, "tune.space.batch_sizes")
    if space.samples < 1:
        raise ConfigError(f"tune.space.samples: must be >= 1, got {space.samples}")
    if space.grace_period < 1 or space.reduction_factor < 2:
        raise ConfigError("tune.space: need grace_period >= 1 and reduction_factor >= 2")
    _check_data(cfg.data, "tune.data")
    _check_train(cfg.train, "tune.train")
    _check_resources(cfg.resources, "tune.resources")
