"""Checks a run must pass before its trials start: its device, its resources, its memory, its data.

Each failure is a :class:`~study.config.ConfigError` with one line that says what to change. Most run
before Ray or MLflow are touched; what only a running Ray can answer (a cluster's CPUs, GPUs and device)
is checked here too, once Ray is up, before any trial.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from study.config import SYNTHETIC_DATASETS, ConfigError, DataConfig, TrainConfig, load_preset
from study.kinds import SCALING, SweepKind
from study.parsing import check_sweep_name, first_line

#: A trial whose estimated peak memory exceeds this fraction of its device's memory is refused.
MEMORY_FRACTION = 0.8
#: Rows of one evaluation chunk (``relgrad_core.evaluate_nll``'s batch size).
EVAL_ROWS = 1024


def default_name(*parts: str) -> str:
    """``parts`` joined by ``-``, anything outside the name charset replaced (e.g. a preset file's stem)."""
    text = re.sub(r"[^A-Za-z0-9._-]+|\.{2,}", "-", "-".join(parts)).lstrip("._-")
    return check_sweep_name((text or "sweep")[:100])


# --------------------------------------------------------------------------------------------
# Device
# --------------------------------------------------------------------------------------------
def check_device(device: str, where: str) -> None:
    """``cuda``/``cuda:N``/``mps`` must exist on this machine (where embedded runs execute)."""
    import torch

    head, _, index = device.partition(":")
    if head == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"{where}={device!r} but CUDA is not available on this machine; use --device cpu or auto "
                "(or --address to run on a GPU cluster)"
            )
        if index and int(index) >= torch.cuda.device_count():
            raise ConfigError(f"{where}={device!r} but this machine has {torch.cuda.device_count()} GPU(s)")
    if head == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{where}={device!r} but MPS is not available on this machine")


def check_trial_resources(
    cpus_per_trial: float, gpus_per_trial: float, *, cpus: float, gpus: float, machine: str, ray: str
) -> None:
    """A trial asking for more GPUs than ``machine`` has, or more CPUs than ``ray`` has, would wait forever:
    say so before it is scheduled."""
    if gpus_per_trial > gpus:
        have = f"{gpus:g} GPU(s)" if gpus else "no GPU"
        raise ConfigError(
            f"resources.gpus_per_trial={gpus_per_trial:g} but {machine} has {have}; use "
            "--gpus-per-trial 0 or connect to a GPU cluster with --address"
        )
    if cpus_per_trial > cpus:
        raise ConfigError(f"resources.cpus_per_trial={cpus_per_trial:g} exceeds the {cpus:g} CPUs of {ray}")


def check_local_resources(cpus_per_trial: float, gpus_per_trial: float, num_cpus: int | None) -> None:
    """An embedded Ray has this machine's CPUs (or ``--num-cpus``) and GPUs: checked before Ray starts."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    cpus = num_cpus or os.cpu_count() or 1
    check_trial_resources(
        cpus_per_trial, gpus_per_trial, cpus=cpus, gpus=gpus, machine="this machine", ray="embedded Ray"
    )


def check_ray_resources(cpus_per_trial: float, gpus_per_trial: float) -> None:
    """What the running Ray (embedded or a cluster) has: checked once it is up, before any trial."""
    import ray

    available = ray.cluster_resources()
    cpus, gpus = float(available.get("CPU", 0.0)), float(available.get("GPU", 0.0))
    place = "the Ray cluster"
    check_trial_resources(cpus_per_trial, gpus_per_trial, cpus=cpus, gpus=gpus, machine=place, ray=place)


def check_cluster_device(device: str, gpus_per_trial: float) -> None:
    """On a cluster (after Ray starts): a CUDA device needs GPUs in the cluster and a GPU per trial."""
    import ray

    if not device.startswith("cuda"):
        return
    if float(ray.cluster_resources().get("GPU", 0.0)) <= 0:
        raise ConfigError(f"train.device={device!r} but the Ray cluster has no GPU")
    if gpus_per_trial <= 0:
        raise ConfigError(
            f"train.device={device!r} on a cluster needs resources.gpus_per_trial > 0, so that each trial "
            "is placed on a node with a GPU"
        )


# --------------------------------------------------------------------------------------------
# Where the sweep's results go
# --------------------------------------------------------------------------------------------
def check_storage(storage_path: str, sweep: str, resume: bool) -> str:
    """Tune's storage: a local folder (made absolute) or a URI (s3://, gs://, a shared FS).

    The sweep's results folder must lie directly under it: a name that would escape it (``../x``,
    ``/abs``) is refused before anything is written.
    """
    from pyarrow import fs
    from ray.tune import Tuner

    from study.store import storage_fs

    check_sweep_name(sweep)
    if "://" not in storage_path:
        root = Path(storage_path).expanduser().resolve()
        if (root / sweep).resolve().parent != root:
            raise ConfigError(f"sweep name {sweep!r} would put its results outside {root}")
        storage_path = str(root)
    experiment_dir = f"{storage_path.rstrip('/')}/{sweep}"
    if resume and not Tuner.can_restore(experiment_dir):
        raise ConfigError(f"--resume: no restorable Tune experiment at {experiment_dir}")
    filesystem, path = storage_fs(experiment_dir)
    if not resume and filesystem.get_file_info(path).type != fs.FileType.NotFound:
        raise ConfigError(
            f"Tune results for sweep {sweep!r} already exist at {experiment_dir}; pass --resume or "
            "choose another --name"
        )
    filesystem.create_dir(storage_fs(storage_path)[1], recursive=True)
    return storage_path


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    """The sizes that set a trial's memory."""

    method: str
    dim: int
    depth: int
    batch_size: int
    rows: int  # of train + val + test

    def label(self) -> str:
        return f"{self.method} at D={self.dim}, depth {self.depth}, batch {self.batch_size}"


def trial_floats(shape: Shape) -> int:
    """Peak floats one trial holds (an estimate, meant to be within a factor of about two).

    Per layer ``W`` is D×D (+ a D bias): weights, gradients, Adam's two moments, ``time_step``'s snapshot
    and the teacher that generates the data, ``6·L·(D² + D)``; the data, ``rows·D``; activations of a
    batch or of an evaluation chunk, ``4·L·max(B, 1024)·D``; and the method's own extra, declared in its
    ``MethodSpec.memory`` (e.g. an inverse per layer for ``ordinary``, every sample's Jacobian for
    ``jacobian``, a MADE per transform for ``zuko_maf``).
    """
    from relgrad_core.methods import get_method

    d, layers, batch = shape.dim, shape.depth, shape.batch_size
    floats = 6 * layers * (d * d + d) + shape.rows * d + 4 * layers * max(batch, EVAL_ROWS) * d
    return floats + math.ceil(get_method(shape.method).memory(d, layers, batch))


def device_memory(device: str) -> tuple[int, str]:
    """(bytes, description) of the memory of ``device`` on this machine: a GPU's total, or the RAM."""
    import torch

    from relgrad_core import resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cuda":
        total = int(torch.cuda.mem_get_info(resolved)[1])
        return total, f"{torch.cuda.get_device_name(resolved)}'s {total / 2**30:.1f} GiB"
    total = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    return total, f"this machine's {total / 2**30:.1f} GiB of RAM"


def check_memory(shapes: Iterable[Shape], train: TrainConfig) -> None:
    """Refuse a run whose largest trial would not fit in :data:`MEMORY_FRACTION` of its device's memory."""
    shapes = list(shapes)
    if not shapes or train.device == "mps":
        return
    itemsize = 8 if train.dtype == "float64" else 4
    worst = max(shapes, key=trial_floats)
    need = trial_floats(worst) * itemsize
    total, what = device_memory(train.device)
    if need > MEMORY_FRACTION * total:
        raise ConfigError(
            f"{worst.label()} needs about {_size(need)} ({train.dtype}), more than "
            f"{MEMORY_FRACTION:.0%} of {what}; lower the dimension or batch size (or cap it with max_dim)"
        )


def _size(n_bytes: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.3g} {unit}"
    return f"{math.ceil(n_bytes / 2**10)} KiB"


def data_rows(data: DataConfig) -> int:
    return data.n_train + data.n_val + data.n_test


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataShape:
    """What the checks need of a data set: its dimension and its rows (train + val + test)."""

    dim: int
    rows: int
    path: str | None = None  # of a data file, absolute


def _shape(data: Any, path: str | None = None) -> DataShape:
    rows = sum(int(split.shape[0]) for split in (data.train, data.val, data.test))
    return DataShape(int(data.dim), rows, path)


def read_data_file(path: str, *, seed: int, standardize: bool) -> DataShape:
    """Load a ``.npy``/``.npz``/``.csv`` file once on the driver: its problems end here, in one line."""
    absolute = Path(path).expanduser().resolve()
    try:
        stat = absolute.stat()
        version = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        version = None  # missing: load_data_file names the problem
    return _read(str(absolute), version, seed, standardize)


@functools.lru_cache(maxsize=8)  # the CLI reads a file for its dimension, then for its rows: load it once
def _read(absolute: str, version: tuple[int, int] | None, seed: int, standardize: bool) -> DataShape:
    from relgrad_core import load_data_file

    try:
        return _shape(load_data_file(absolute, seed=seed, standardize=standardize), absolute)
    except (ValueError, TypeError, OSError) as exc:
        raise ConfigError(first_line(exc)) from None


def named_dataset(data: DataConfig, seed: int, where: str) -> DataShape:
    """A named (not generated) data set, loaded here once: a missing file or package is one line."""
    from relgrad_core import load_dataset

    if data.dataset in SYNTHETIC_DATASETS:
        raise ValueError(f"{data.dataset!r} is generated at any dimension")
    try:
        return _shape(load_dataset(data.dataset, root=data.root, seed=seed))
    except (OSError, ValueError, TypeError, ImportError) as exc:
        raise ConfigError(f"{where} {data.dataset!r}: {first_line(exc)}") from None


def data_dim(data: DataConfig, seed: int, where: str) -> int:
    """The dimension of the data an HPO sweep trains on: generated data's ``dim`` (its config requires it),
    a data file's or a named set's (read once, here on the driver: a problem is one line)."""
    if data.file is not None:
        return read_data_file(data.file, seed=seed, standardize=data.standardize).dim
    if data.dataset in SYNTHETIC_DATASETS:
        if data.dim is None:
            raise ConfigError(f"{where}.data.dim: required for the synthetic {data.dataset!r} data")
        return int(data.dim)
    return named_dataset(data, seed, f"{where}.data.dataset").dim


# --------------------------------------------------------------------------------------------
# The grid as it will run
# --------------------------------------------------------------------------------------------
def _dims_text(dims: list[int]) -> str:
    if len(dims) <= 3:
        return ", ".join(map(str, dims))
    return f"{dims[0]}…{dims[-1]} ({len(dims)} D)"


def user_grid(kind: SweepKind, overrides: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """A scaling grid means what the user typed: dims given on the command line (``--dims``,
    ``--set dims=``) set the preset's per-method ``max_dim`` caps aside; caps the user sets too
    (``--set max_dim.M=D``) apply."""
    if kind is SCALING and any(path == "dims" for path, _ in overrides):
        return [("max_dim", {}), *overrides]
    return overrides


def grid_text(cfg: Any, preset: str, overrides: list[tuple[str, Any]]) -> str:
    """What a scaling sweep will run per method, printed before it starts: each method's D, the cuts its
    ``max_dim`` makes, the caps of ``preset`` that the user's dims set aside, and the per-step budgets."""
    all_dims = sorted(set(cfg.dims))
    lines = ["grid:"]
    for method in cfg.methods:
        dims, cap = cfg.dims_of(method), cfg.max_dim.get(method)
        cut = [d for d in all_dims if d not in dims]
        if not dims:
            lines.append(f"  {method}: not run: every D is above its max_dim {cap}")
        elif cut:
            lines.append(
                f"  {method}: D = {_dims_text(dims)}; capped at {cap} by max_dim (skips {_dims_text(cut)})"
            )
        else:
            lines.append(f"  {method}: D = {_dims_text(dims)}")
    dims_given = any(path == "dims" for path, _ in overrides)
    caps = load_preset(preset).scaling.max_dim if dims_given else {}
    dropped = {m: d for m, d in caps.items() if m in cfg.methods and cfg.max_dim.get(m) != d}
    if dropped:
        shown = ", ".join(f"{m} ≤ {d}" for m, d in dropped.items())
        lines.append(
            f"  the preset's max_dim caps ({shown}) do not apply: --dims was given "
            "(cap a method with --set max_dim.METHOD=D)"
        )
    budgets = {m: cfg.budget_for(m) for m in cfg.methods}
    if any(b is not None for b in budgets.values()):
        shown = ", ".join(f"{m} {b:g} s" for m, b in budgets.items() if b is not None)
        lines.append(
            f"  per-step budget ({shown}): a curve's larger D are skipped once its step takes longer"
        )
    return "\n".join(lines)
