"""What the ``ui`` and ``report`` commands do once their arguments are parsed: open the MLflow UI on the
project's store, and build a sweep's scaling report (options checked before any run is read)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from study.parsing import EXIT_FAILED, EXIT_OK, EXIT_USAGE, ConfigError, parse_int_list
from study.tracking import default_artifact_root, sqlite_path

PREDICT_HELP = (
    "D at which to predict step time and speedups, e.g. 8192,23552 (default: largest D x4 and 23552)"
)

#: Largest D the report predicts at (a prediction, not an allocation, but 10⁶ is already 40× the paper's).
MAX_PREDICT_DIM = 1_000_000


@dataclass(frozen=True)
class ReportOptions:
    """``--min-dim`` (range of the secondary log-log slope) and ``--predict-dims``, checked."""

    min_dim: int | None = None
    predict_dims: list[int] | None = None


def report_options(min_dim: int | None, predict_dims: str | None) -> ReportOptions:
    """The report's options from their command-line text: ConfigError (one line, exit 2) when bad."""
    if min_dim is not None and min_dim < 1:
        raise ConfigError(f"--min-dim: must be a positive integer, got {min_dim}")
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


def open_ui(uri: str, host: str, port: int) -> int:
    """Run ``mlflow ui`` on the store at ``uri`` (a server store is only named); its exit code."""
    if uri.startswith("http"):
        print(f"the store is a tracking server: open {uri}")
        return EXIT_OK
    require_store(uri)
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        host,
        "--port",
        str(port),
    ]
    artifacts = default_artifact_root(uri)
    if artifacts is not None:
        command += ["--default-artifact-root", artifacts]
    print(f"MLflow UI on http://{host}:{port} (store {uri}); Ctrl-C to stop")
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return EXIT_OK
