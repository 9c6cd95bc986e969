"""What the ``report`` command (and ``scaling --report``) does once its arguments are parsed: build a
sweep's scaling report, its options checked before any run is read. Light to import: the CLI checks
``--predict-dims`` before anything heavy is loaded."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.arguments import int_problem
from study.parsing import EXIT_FAILED, EXIT_OK, EXIT_USAGE, ConfigError, parse_int_list
from study.store import sqlite_path

#: Largest D the report predicts at (a prediction, not an allocation, but 10⁶ is already 40× the paper's).
MAX_PREDICT_DIM = 1_000_000


@dataclass(frozen=True)
class ReportOptions:
    """``--min-dim`` (range of the secondary log-log slope) and ``--predict-dims``, checked."""

    min_dim: int | None = None
    predict_dims: list[int] | None = None


def report_options(min_dim: int | None, predict_dims: str | None) -> ReportOptions:
    """The report's options from their command-line text: ConfigError (one line, exit 2) when bad."""
    problem = None if min_dim is None else int_problem(min_dim)
    if problem is not None:  # the analysis's own rule, before anything heavy is loaded
        raise ConfigError(f"--min-dim: {problem}")
    dims = None
    if predict_dims:
        dims = parse_int_list(predict_dims, "--predict-dims")
        bad = [d for d in dims if d < 1 or d > MAX_PREDICT_DIM]
        if bad:
            raise ConfigError(f"--predict-dims: each D must be in 1..{MAX_PREDICT_DIM}, got {bad[0]}")
    return ReportOptions(min_dim, dims)


def require_store(uri: str) -> None:
    """ConfigError unless a sqlite store already exists at ``uri`` (servers and databases are not checked)."""
    path = sqlite_path(uri)
    if path is not None and path.is_absolute() and not path.exists():
        raise ConfigError(f"no MLflow store at {path} yet; run a sweep first (relgrad scaling)")


def build_report(
    sweeps: list[str], uri: str, experiment: str, out: str | None, options: ReportOptions
) -> int:
    """Build the report under ``out`` (default ``reports/<sweeps>``), print its headline; the exit code:
    1 when the report could not be written, or was written but MLflow could not take a copy (each
    problem one line on stderr; where the report is, is printed either way)."""
    try:
        import analysis
    except ImportError as exc:
        raise ConfigError(f"the analysis package is not available: {exc}") from None
    out_dir = Path(out or Path("reports") / "+".join(sweeps)).resolve()
    try:
        report: Any = analysis.build_report(
            sweeps,
            tracking_uri=uri,
            out_dir=out_dir,
            experiment=experiment,
            min_dim=options.min_dim,
            predict_dims=options.predict_dims,
        )
    except analysis.ReportError as exc:
        print(f"relgrad report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # e.g. the disk filled while the report was written
        print(
            f"relgrad report: cannot write the report under {out_dir}: {exc.strerror or exc}", file=sys.stderr
        )
        return EXIT_FAILED
    for line in getattr(report, "headline", None) or [str(report)]:
        print(line)
    print(f"report: {getattr(report, 'html', out_dir / 'report.html')}")
    warnings = list(getattr(report, "warnings", None) or [])
    for warning in warnings:
        print(f"relgrad report: {warning}", file=sys.stderr)
    return EXIT_FAILED if warnings else EXIT_OK
