"""Where the file-based data sets live, and the error a user sees when a file is missing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "RELGRAD_DATA"
DEFAULT_ROOT = Path("~/.relgrad/data")


@dataclass(frozen=True)
class DataRoot:
    """A resolved data directory and where the choice came from (for error messages)."""

    path: Path
    source: str


def resolve_root(root: str | os.PathLike[str] | None) -> DataRoot:
    """The ``root`` argument wins, then ``$RELGRAD_DATA``, then ``~/.relgrad/data``."""
    if root is not None:
        if not isinstance(root, str | os.PathLike):
            raise TypeError(f"root must be a path (str or os.PathLike), got {root!r}")
        return DataRoot(Path(root).expanduser(), "the root= argument")
    env = os.environ.get(ENV_VAR)
    if env:
        return DataRoot(Path(env).expanduser(), f"the {ENV_VAR} environment variable")
    return DataRoot(DEFAULT_ROOT.expanduser(), f"the default (no root= argument, {ENV_VAR} unset)")


def missing_file_error(dataset: str, root: DataRoot, relative: str, *alternatives: str) -> FileNotFoundError:
    """A ``FileNotFoundError`` naming the file, the full expected path and how to set the root."""
    wanted = [relative, *alternatives]
    paths = " or ".join(f"'{root.path / name}'" for name in wanted)
    folder = Path(relative).parts[0]
    return FileNotFoundError(
        f"{dataset}: data file '{relative}' not found; expected at {paths}. The data root "
        f"'{root.path}' comes from {root.source}. Put the file there, or point load_dataset"
        f"(..., root=DIR) or the {ENV_VAR} environment variable at the directory that contains "
        f"'{folder}/'."
    )


def find_file(dataset: str, root: DataRoot, relative: str, *alternatives: str) -> Path:
    """The first of ``relative`` and ``alternatives`` that exists under ``root``, else raise."""
    for name in (relative, *alternatives):
        candidate = root.path / name
        if candidate.is_file():
            return candidate
    raise missing_file_error(dataset, root, relative, *alternatives)
