"""The sqlite MLflow store: where it lives, created whole or not at all, repaired when an earlier creation
was cut short, and proved writable before any work starts.

Where (:func:`default_tracking_uri`, :func:`sqlite_path`, :func:`default_artifact_root`,
:func:`default_storage_path`) is plain path arithmetic: this module imports MLflow only to build a store,
so the CLI and ``relgrad ui`` can find a store without loading MLflow.

MLflow builds a new sqlite store's schema the first time a process opens it: the tables, then a chain of
alembic migrations, then the ``Default`` experiment. Cut anywhere (a full disk, a kill) it leaves a file
that every later open trips over (``table ... already exists``). So a new store is built in a temporary
file beside its path and moved into place with one ``os.replace`` (atomic on POSIX): the path holds
either nothing or a complete store. A store left half-built by an older version (or by plain MLflow) —
tables but no experiment yet, so nothing a user could have recorded — is rebuilt the same way, with a
line that says so. Callers hold :func:`creation_lock` meanwhile (:func:`study.tracking.client_for`).

:func:`check_writable` then really writes: a committed write to the database (a read-only file, folder
or file system fails it, whoever the user is) and 1 MiB beside it (a full disk fails it).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from study.parsing import ConfigError, error_line

if TYPE_CHECKING:
    from pyarrow.fs import FileSystem

#: An incomplete store unchanged this long is taken as left half-built (not being built by another
#: process right now); the longest wait for one that is still being built.
SETTLE_S = 3.0
BUILD_WAIT_S = 60.0
#: Bytes written (and removed) beside the store to prove there is room for a sweep's first records.
SPACE_PROBE_BYTES = 1 << 20
_SIDE_FILES = ("-journal", "-wal", "-shm")


def default_tracking_uri(cwd: str | Path | None = None) -> str:
    """``sqlite:////<abs cwd>/runs/mlflow.db``: MLflow 3 refuses the old ``./mlruns`` file store."""
    root = Path(cwd or os.getcwd()).resolve() / "runs"
    return f"sqlite:///{(root / 'mlflow.db').as_posix()}"


def default_storage_path(cwd: str | Path | None = None) -> str:
    """``<abs cwd>/runs/ray_results``: where Tune keeps a sweep's state (what ``--resume`` restores)."""
    return str(Path(cwd or os.getcwd()).resolve() / "runs" / "ray_results")


def storage_fs(storage_path: str) -> tuple[FileSystem, str]:
    """(filesystem, path) of Tune's storage: a local folder or a URI such as s3://bucket/relgrad (pyarrow is
    imported here, not at the top: the CLI reads this module's paths without it)."""
    from pyarrow import fs

    return fs.FileSystem.from_uri(storage_path)


def default_artifact_root(tracking_uri: str) -> str | None:
    """Absolute artifact root next to a sqlite store (trials run in other working directories).

    For a tracking server the server's own artifact root is used (None).
    """
    path = sqlite_path(tracking_uri)
    return None if path is None else str(path.parent / "artifacts")


def sqlite_path(tracking_uri: str) -> Path | None:
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri[len("sqlite:///") :])


@contextlib.contextmanager
def creation_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``<store>.lock`` beside the store: one process at a time creates it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115 (closed below)
    except OSError as exc:
        reason = exc.strerror or exc
        raise ConfigError(f"tracking store {path}: cannot create files in its folder ({reason})") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_schema(path: Path, artifact_root: str | None) -> None:
    """Make ``path`` a complete MLflow store: build it if absent or empty, rebuild it if half-built.

    Raises ConfigError (one line) when it cannot be built, is not an sqlite file, or is half-built with
    records in it (then it is not ours to throw away).
    """
    if path.is_dir():
        raise ConfigError(f"tracking store {path}: is a folder, not a database file")
    state = _settled_state(path)
    if state == "complete":
        return
    if state == "half-built":
        print(
            f"relgrad: tracking store {path} was left half-built by an earlier first use (e.g. a full disk "
            "while it was created) and holds no experiment yet: building it again",
            file=sys.stderr,
        )
    _build(path, artifact_root)


def _settled_state(path: Path) -> str:
    """:func:`_state` once nobody is building the store: another process opening a new store with plain
    MLflow (an MLflow UI, a script, a test) builds it in place, so an incomplete file that is still
    changing is waited for (up to :data:`BUILD_WAIT_S`); one unchanged for :data:`SETTLE_S` was left so."""
    state = _state(path)
    start = changed = time.monotonic()
    stamp = _stamp(path)
    while state != "complete" and path.exists() and time.monotonic() - start < BUILD_WAIT_S:
        if time.monotonic() - changed >= SETTLE_S:
            break
        time.sleep(0.2)
        if _stamp(path) != stamp:
            stamp, changed = _stamp(path), time.monotonic()
        state = _state(path)
    return state


def _stamp(path: Path) -> tuple[int, int, bool]:
    try:
        info = path.stat()
    except OSError:
        return (-1, -1, False)
    return (info.st_size, info.st_mtime_ns, path.with_name(path.name + "-journal").exists())


def is_complete(path: Path) -> bool:
    """Whether ``path`` already holds a complete store (then opening it needs no creation lock)."""
    return path.is_file() and _state(path) == "complete"


def _state(path: Path) -> str:
    """``absent`` (no file, or no table), ``complete`` (an experiment exists: MLflow creates the default
    one after its last migration) or ``half-built`` (tables, no experiment, no run)."""
    if not path.exists() or path.stat().st_size == 0:
        return "absent"
    try:
        connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            listed = connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            tables = {row[0] for row in listed}
            if not tables:
                return "absent"
            experiments = _count(connection, "experiments", tables)
            runs = _count(connection, "runs", tables)
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise ConfigError(f"tracking store {path}: not a readable sqlite database ({exc})") from None
    if experiments:
        return "complete"
    if runs:
        raise ConfigError(
            f"tracking store {path}: holds runs but no experiment, which MLflow never leaves; "
            "move it away (or repair it with `mlflow db upgrade`) and run again"
        )
    return "half-built"


def _count(connection: sqlite3.Connection, table: str, tables: set[str]) -> int:
    if table not in tables:
        return 0
    return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _build(path: Path, artifact_root: str | None) -> None:
    """Build the schema in ``.<name>.<pid>.building`` beside ``path``, then move it into place."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    temporary = path.with_name(f".{path.name}.{os.getpid()}.building")
    _remove(temporary)
    try:
        with _quiet("mlflow.store.db.utils", "alembic"):  # their INFO lines are not for the user
            store = SqlAlchemyStore(f"sqlite:///{temporary.as_posix()}", artifact_root or str(path.parent))
        store.engine.dispose()  # every connection closed: the file is whole and its journal gone
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        _remove(path, files=_SIDE_FILES)  # a stale journal would be replayed into the new file
        os.replace(temporary, path)
    except Exception as exc:  # MLflow/SQLAlchemy/OS errors alike: the store cannot be built here
        _remove(temporary)
        raise ConfigError(f"tracking store {path}: cannot create it ({error_line(exc)})") from None


@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def check_writable(path: Path, timeout_s: float = 5.0) -> None:
    """ConfigError (one line) unless a write to the store commits and 1 MiB fits beside it."""
    try:
        connection = _open(path, timeout_s)
        try:
            connection.execute("BEGIN IMMEDIATE")  # the write lock: fails now, not after retries
            version = int(connection.execute("PRAGMA user_version").fetchone()[0])
            connection.execute(f"PRAGMA user_version = {version}")  # unchanged, but written and committed
            connection.commit()
        finally:
            connection.close()
    except (sqlite3.Error, OSError) as exc:
        raise ConfigError(f"tracking store {path}: cannot write to it ({exc})") from None
    probe = path.with_name(f".{path.name}.{os.getpid()}.space")
    try:
        with open(probe, "wb") as handle:
            handle.write(b"\0" * SPACE_PROBE_BYTES)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise ConfigError(
            f"tracking store {path}: no room to write beside it ({exc.strerror or exc}); free some space "
            "or choose another --tracking-uri"
        ) from None
    finally:
        _remove(probe)


def _open(path: Path, timeout_s: float) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=timeout_s)


def _remove(path: Path, files: tuple[str, ...] = ("", *_SIDE_FILES)) -> None:
    for suffix in files:
        with contextlib.suppress(OSError):
            path.with_name(path.name + suffix).unlink()
