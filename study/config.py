"""Typed sweep configurations (pydantic v2), YAML presets and command-line overrides.

Every field is checked when a config is built: unknown keys are refused (``extra="forbid"``),
counts are strict positive integers, floats finite and bounded, and method, data set and optimizer
names are checked against the core's registries *at validation time*, so a method or data set
registered in Python is accepted without editing this package. Any problem raises
:class:`ConfigError` with one line that names the field, e.g. ``scaling.dims[0]: must be >= 1, got 0``.
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, model_validator

from study.fields import (
    FILE_DATASET,
    MAX_DIM,
    Alpha,
    Budget,
    Count,
    DatasetName,
    DeviceName,
    Dim,
    LearningRate,
    MethodName,
    NonNegative,
    NonNegInt,
    OptimizerName,
    Positive,
)
from study.kinds import SCALING, SWEEPS, TRAIN, TUNE, SweepKind
from study.names import registry_names_deferred
from study.parsing import (
    MAX_LIST_ITEMS,
    PRESET_DIR,
    ConfigError,
    apply_overrides,
    config_error,
    parse_assignment,
    parse_float_list,
    parse_int_list,
    parse_str_list,
    preset_names,
)

__all__ = [
    "FILE_DATASET",
    "MAX_LIST_ITEMS",
    "PRESET_DIR",
    "ConfigError",
    "apply_overrides",
    "parse_assignment",
    "parse_float_list",
    "parse_int_list",
    "parse_str_list",
    "preset_names",
    "registry_names_deferred",
]

#: Most trials one scaling sweep may have (method × depth × batch × lr × dim × seed points).
MAX_GRID_POINTS = 10_000
#: Data generated at every D, the only kind a scaling sweep can use (real data have a fixed D).
SYNTHETIC_DATASETS: tuple[str, ...] = ("teacher", "noise")


# pydantic calls a custom __init__ for nested sections too: only the outermost turns errors into one line.
_NESTED: ContextVar[bool] = ContextVar("relgrad_config_nested", default=False)


def _nonempty(item: Any) -> Any:
    return Annotated[list[item], Field(min_length=1, max_length=MAX_LIST_ITEMS)]


class Section(BaseModel):
    """A config section: unknown keys refused; building one with bad values raises ConfigError."""

    model_config = ConfigDict(extra="forbid", validate_default=True)
    where: ClassVar[str] = "config"  # prefix of the field names in messages

    def __init__(self, /, **data: Any) -> None:
        if _NESTED.get():  # a section built while its parent validates: the parent reports the error
            super().__init__(**data)
            return
        token = _NESTED.set(True)
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error(exc, self.where, type(self)) from None
        finally:
            _NESTED.reset(token)


class Resources(Section):
    """What one trial asks Ray for."""

    where: ClassVar[str] = "resources"
    cpus_per_trial: Positive = 1.0
    gpus_per_trial: NonNegative = 0.0
    max_concurrent: Count | None = None  # None: as many as the resources allow
    max_failures: NonNegInt = 2  # retries of a trial whose worker died (FailureConfig)


class DataConfig(Section):
    """The data a trial trains on; ``teacher``/``noise`` are generated at the trial's dimension.

    ``file`` (an absolute path to .npy/.npz/.csv, from ``--data-file``) replaces the named data set;
    ``dataset`` is then recorded as ``"file"``.
    """

    where: ClassVar[str] = "data"
    dataset: DatasetName = "teacher"
    n_train: Count = 2000
    n_val: Count = 500
    n_test: Count = 500
    teacher_depth: Count = 2
    root: str | None = None  # local files of the real data sets ($RELGRAD_DATA otherwise)
    dim: Dim | None = None  # dimension of synthetic data in an HPO sweep
    file: str | None = None
    standardize: bool = True  # of a data file: train mean/sd, the log-det term carried by the loader

    @model_validator(mode="before")
    @classmethod
    def _file_names_the_data(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and raw.get("file") is not None:
            return {**raw, "dataset": FILE_DATASET}
        return raw

    @model_validator(mode="after")
    def _file(self) -> DataConfig:
        if self.file is None and self.dataset == FILE_DATASET:
            raise ValueError(f"dataset {FILE_DATASET!r} needs a file (--data-file PATH)")
        if self.file is not None and not Path(self.file).is_absolute():
            raise ValueError(f"file must be an absolute path, got {self.file!r}")
        return self


class TrainConfig(Section):
    """How long and how a trial trains after it has been timed."""

    where: ClassVar[str] = "train"
    epochs: Count | None = 5  # None: no cap, until patience (or max_steps / time_budget_s)
    steps_per_epoch: Count | None = 50  # evaluation cadence; None: a full pass over train
    max_steps: Count | None = None
    time_budget_s: Positive | None = 60.0  # wall-clock cap on training per trial
    patience: Count | None = None
    optimizer: OptimizerName = "adam"
    timing_warmup: NonNegInt = 2
    timing_repeats: Count = 5
    dtype: Literal["float32", "float64"] = "float32"
    device: DeviceName = "auto"

    @model_validator(mode="after")
    def _has_a_stopping_rule(self) -> TrainConfig:
        if (
            self.epochs is None
            and self.patience is None
            and self.max_steps is None
            and self.time_budget_s is None
        ):
            raise ValueError(
                "epochs: null trains until patience; set patience (or max_steps or time_budget_s)"
            )
        return self


class ScalingConfig(Section):
    """A grid over method × dim × depth × batch size × learning rate."""

    kind: ClassVar[SweepKind] = SCALING
    where: ClassVar[str] = SCALING.command
    methods: _nonempty(MethodName) = Field(default_factory=lambda: ["relative", "ordinary"])
    dims: _nonempty(Dim) = Field(default_factory=lambda: [32, 64, 128])
    depths: _nonempty(Count) = Field(default_factory=lambda: [2])
    batch_sizes: _nonempty(Count) = Field(default_factory=lambda: [64])
    lrs: _nonempty(LearningRate) = Field(default_factory=lambda: [1e-3])
    alpha: Alpha = 0.3
    seed: NonNegInt = 0
    # Several seeds (data, teacher and initialisation): every point runs once per seed; replaces `seed`.
    seeds: _nonempty(NonNegInt) | None = None
    # A method named here trains with its own learning rate instead of the grid's `lrs` (e.g. lu, whose
    # LU factors need a smaller step than a dense W at large D).
    lr_per_method: dict[MethodName, LearningRate] = Field(default_factory=dict)
    # Per-step budget in seconds: once a method's median step exceeds it at some D, larger D of
    # that curve are skipped. A number for every method, or a mapping method -> seconds.
    budget_s: Budget = None
    max_dim: dict[MethodName, Dim] = Field(default_factory=dict)  # per-method cap (jacobian is O(B·D³))
    matmul_peak_size: Annotated[int, Strict(), Field(ge=0, le=MAX_DIM)] | None = None  # n of the peak's GEMM
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    resources: Resources = Field(default_factory=Resources)
    inject_worker_kill: str | None = None  # testing only: marker file; first trial kills itself

    @model_validator(mode="after")
    def _grid(self) -> ScalingConfig:
        if self.data.file is None and self.data.dataset not in SYNTHETIC_DATASETS:
            raise ValueError(
                f"data.dataset must be 'teacher' or 'noise' (scaling sweeps generate data at every D) "
                f"or come from --data-file, got {self.data.dataset!r}"
            )
        # a repeated value would run the same trials twice (dims alone are a set: dims_of sorts them)
        for name in ("methods", "depths", "batch_sizes", "lrs", "seeds"):
            values = getattr(self, name)
            if values is not None and len(set(values)) < len(values):
                raise ValueError(f"{name} has duplicates: {values}")
        if self.seeds is not None and self.seed != 0:
            raise ValueError(
                f"seed={self.seed} and seeds={self.seeds}: give one (e.g. --set 'seeds=[{self.seed}]')"
            )
        unused = sorted(set(self.lr_per_method) - set(self.methods))
        if unused:
            raise ValueError(f"lr_per_method names methods not in methods: {', '.join(unused)}")
        size = self.grid_size()
        if size == 0:
            raise ValueError("the grid is empty (every dim is above the methods' max_dim)")
        if size > MAX_GRID_POINTS:
            raise ValueError(f"the grid has {size} points; at most {MAX_GRID_POINTS} per sweep")
        return self

    def budget_for(self, method: str) -> float | None:
        if isinstance(self.budget_s, dict):
            value = self.budget_s.get(method)
            return None if value is None else float(value)
        return None if self.budget_s is None else float(self.budget_s)

    def dims_of(self, method: str) -> list[int]:
        """The grid's dimensions for ``method``, ascending, under its ``max_dim`` cap."""
        cap = self.max_dim.get(method)
        return [d for d in sorted(set(self.dims)) if cap is None or d <= cap]

    def lrs_of(self, method: str) -> list[float]:
        """The learning rates ``method`` trains with: its ``lr_per_method`` entry, else ``lrs``."""
        return [self.lr_per_method[method]] if method in self.lr_per_method else list(self.lrs)

    def seeds_of(self) -> list[int]:
        """``seeds`` when given, else ``[seed]``."""
        return list(self.seeds) if self.seeds is not None else [self.seed]

    def grid_size(self) -> int:
        """Number of points, counted without building the grid."""
        per_curve = len(self.depths) * len(self.batch_sizes) * len(self.seeds_of())
        return per_curve * sum(len(self.lrs_of(m)) * len(self.dims_of(m)) for m in self.methods)

    def points(self) -> list[dict[str, Any]]:
        """The grid, as trial parameter dicts, in (method, depth, batch, lr, dim, seed) order."""
        return [
            {
                "method": method,
                "dim": dim,
                "depth": depth,
                "batch_size": batch_size,
                "lr": lr,
                "alpha": self.alpha,
                "seed": seed,
            }
            for method in self.methods
            for depth in self.depths
            for batch_size in self.batch_sizes
            for lr in self.lrs_of(method)
            for dim in self.dims_of(method)
            for seed in self.seeds_of()
        ]


class TuneSpace(Section):
    """The HPO search space (Optuna TPE) and the ASHA schedule."""

    where: ClassVar[str] = "space"
    method: MethodName = "relative"
    lr_min: LearningRate = 1e-4
    lr_max: LearningRate = 1e-2
    depths: _nonempty(Count) = Field(default_factory=lambda: [1, 2, 3])
    alpha_min: Alpha = 0.01
    alpha_max: Alpha = 0.5
    batch_sizes: _nonempty(Count) = Field(default_factory=lambda: [32, 64, 128])
    samples: Annotated[int, Strict(), Field(ge=1, le=MAX_GRID_POINTS)] = 20
    grace_period: Count = 1  # ASHA: evaluations before a trial can be stopped
    reduction_factor: Annotated[int, Strict(), Field(ge=2)] = 3
    seed: NonNegInt = 0

    @model_validator(mode="after")
    def _ranges(self) -> TuneSpace:
        if self.lr_min > self.lr_max:
            raise ValueError(f"need lr_min <= lr_max, got {self.lr_min:g} > {self.lr_max:g}")
        if self.alpha_min > self.alpha_max:
            raise ValueError(f"need alpha_min <= alpha_max, got {self.alpha_min:g} > {self.alpha_max:g}")
        return self


class HpoConfig(Section):
    """An Optuna search of one method's hyperparameters, its data and its trials' schedule."""

    kind: ClassVar[SweepKind] = TUNE
    where: ClassVar[str] = TUNE.command
    space: TuneSpace = Field(default_factory=TuneSpace)
    data: DataConfig = Field(default_factory=lambda: DataConfig(dataset="digits"))
    train: TrainConfig = Field(default_factory=TrainConfig)
    resources: Resources = Field(default_factory=Resources)
    retrain_best: bool = True

    @model_validator(mode="after")
    def _asha_needs_epochs(self) -> HpoConfig:
        if self.train.epochs is None:
            raise ValueError("train.epochs must be a number for tune: ASHA stops trials at fixed epochs")
        return self

    @model_validator(mode="after")
    def _synthetic_needs_dim(self) -> HpoConfig:
        if self.data.file is None and self.data.dataset in SYNTHETIC_DATASETS and self.data.dim is None:
            raise ValueError(f"data.dim is required for the synthetic {self.data.dataset!r} data (--dim)")
        return self


class SingleRun(Section):
    """One training run (``relgrad train``): one point of a grid, its data and its schedule."""

    kind: ClassVar[SweepKind] = TRAIN
    where: ClassVar[str] = "run"
    method: MethodName = "relative"
    dim: Dim = 64  # of teacher/noise data; a named data set or a file brings its own
    depth: Count = 2
    batch_size: Count = 100
    lr: LearningRate = 1e-3
    alpha: Alpha = 0.3
    seed: NonNegInt = 0
    data: DataConfig = Field(default_factory=lambda: DataConfig(n_train=10_000))
    train: TrainConfig = Field(
        # no epoch cap: one run trains to its validation optimum (patience), as fit does by default
        default_factory=lambda: TrainConfig(
            epochs=None, steps_per_epoch=None, time_budget_s=None, patience=30
        )
    )

    def point(self) -> dict[str, Any]:
        keys = ("method", "dim", "depth", "batch_size", "lr", "alpha", "seed")
        return {k: getattr(self, k) for k in keys}


def config_class(kind: SweepKind) -> type[ScalingConfig | HpoConfig | SingleRun]:
    """The config class of ``kind``'s runs (each class names its kind)."""
    return next(cls for cls in (ScalingConfig, HpoConfig, SingleRun) if cls.kind is kind)


class Preset(BaseModel):
    """A preset file: a section per sweep kind, named by its command."""

    name: str
    scaling: ScalingConfig
    tune: HpoConfig

    def section(self, kind: SweepKind) -> ScalingConfig | HpoConfig:
        return getattr(self, kind.command)


# --------------------------------------------------------------------------------------------
# Building, loading and overriding
# --------------------------------------------------------------------------------------------
def from_dict(cls: type[Section], raw: Any, where: str | None = None) -> Any:
    """Build and validate ``cls`` from a nested dict; ConfigError (one line) on any problem."""
    where = where or cls.where
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__} {raw!r:.60}")
    token = _NESTED.set(True)
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        raise config_error(exc, where, cls) from None
    finally:
        _NESTED.reset(token)


def with_overrides(config: Section, overrides: list[tuple[str, Any]], where: str | None = None) -> Any:
    """A validated copy of ``config`` with ``(dotted.path, value)`` pairs applied; the original is kept."""
    raw = config.model_dump()
    apply_overrides(raw, overrides, where or config.where)
    return from_dict(type(config), raw, where)


def _preset_error(name: str, problem: str) -> ConfigError:
    return ConfigError(f"preset {name!r}: {problem}", problem=problem)


def load_preset(name_or_path: str) -> Preset:
    """Load a preset by name (``study/presets/<name>.yaml``) or from a YAML file path (safe_load only).

    A problem with the file itself is a ConfigError whose ``problem`` says it without the name (the CLI
    puts ``--preset NAME:`` in front); a bad value is the section's error (``scaling.dims[0]: ...``).
    """
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or "/" in name_or_path:
        name = path.stem
        if not path.is_file():
            raise _preset_error(name_or_path, "no such file")
    else:
        name, path = name_or_path, PRESET_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            known = ", ".join(preset_names())
            raise _preset_error(
                name_or_path, f"unknown preset {name_or_path!r} (choose from {known} or a YAML file)"
            )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise _preset_error(name, f"invalid YAML{at}: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _preset_error(name, f"cannot read {path}: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise _preset_error(name, f"expected a mapping at the top level, got {type(raw).__name__}")
    sections = [kind.command for kind in SWEEPS]
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise _preset_error(name, f"unknown sections {unknown}; known: {', '.join(sections)}")
    for section in sections:
        if section in raw and not isinstance(raw[section], dict):
            got = "null" if raw[section] is None else type(raw[section]).__name__
            raise _preset_error(name, f"section {section!r} must be a mapping, got {got}")
    built = {kind.command: from_dict(config_class(kind), raw.get(kind.command, {})) for kind in SWEEPS}
    return Preset(name=name, **built)


def to_dict(config: BaseModel) -> dict[str, Any]:
    return config.model_dump()


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"train": {"epochs": 5}}`` -> ``{"train.epochs": "5"}`` (for MLflow params).

    Unset fields (None) are left out: a param whose value is the string ``None`` says nothing.
    """
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if value is None:
            continue
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, list):
            flat[name] = ",".join(str(v) for v in value)
        else:
            flat[name] = str(value)
    return flat


#: Fields that exist for the test suite only: never recorded as MLflow params.
TEST_ONLY_FIELDS: tuple[str, ...] = ("inject_worker_kill",)


def tracked_params(config: BaseModel) -> dict[str, str]:
    """A sweep's parent-run params: its config flattened, without unset or test-only fields."""
    return flatten(config.model_dump(exclude=set(TEST_ONLY_FIELDS) & set(type(config).model_fields)))


# --------------------------------------------------------------------------------------------
# Validation of configs that may have been changed after they were built
# --------------------------------------------------------------------------------------------
def validate_scaling(cfg: ScalingConfig) -> ScalingConfig:
    """Validate (again) every field and the grid; returns the validated copy."""
    return from_dict(ScalingConfig, cfg.model_dump())


def validate_hpo(cfg: HpoConfig) -> HpoConfig:
    return from_dict(HpoConfig, cfg.model_dump())
