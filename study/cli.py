"""The ``relgrad`` command: ``scaling``, ``tune``, ``train``, ``ui`` and ``report``.

Exit codes: 0 done, 2 bad input (a one-line message, no traceback, before Ray starts or any run is
recorded), 130 interrupted by Ctrl-C and 143 by SIGTERM (continue with ``--resume``), 1 some trials
failed or anything else.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import logging
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# torch-free names only (analysis/__init__ is lazy)
from analysis.schema import DEFAULT_EXPERIMENT, PAPER_MAX_DIM, PREDICT_EXTEND_FACTOR, STATUS_OK
from study import ray_runtime, signals  # ray_runtime before anything imports ray: Ray on loopback (light)
from study.cli_config import DEFAULT_PRESET, FLAGS, build_config, preflight_checks, refuse_changes
from study.kinds import RUNS, SCALING, TRAIN, TUNE, SweepKind, by_command
from study.parsing import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    ConfigError,
    check_sweep_name,
    parse_str_list,
    preset_names,
)

# Everything heavy (pydantic configs, torch, mlflow, ray, pandas) is imported by the command that needs
# it, so that `relgrad --help` and a usage error answer at once.


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so ``main`` returns its exit code (one ``relgrad:
    error:`` line: the message names the argument)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message)


# --------------------------------------------------------------------------------------------
# Argument parsing
# --------------------------------------------------------------------------------------------
PREDICT_HELP = (
    f"D at which to predict step time and speedups, e.g. 8192,{PAPER_MAX_DIM} "
    f"(default: largest D x{PREDICT_EXTEND_FACTOR} and {PAPER_MAX_DIM})"
)


def _store_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tracking-uri",
        help="MLflow store: http://host:port for a server (default: sqlite under ./runs)",
    )
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="MLflow experiment name")


def _run_flags(parser: argparse.ArgumentParser) -> None:
    """What the commands that run trials take besides the store."""
    parser.add_argument("--name", help="sweep name: letters, digits, . _ - (default: preset + timestamp)")
    parser.add_argument("--address", help="Ray cluster address (e.g. auto); default: embedded Ray")
    parser.add_argument(
        "--storage-path", help="Tune results folder (default ./runs/ray_results; shared FS on clusters)"
    )
    parser.add_argument("--num-cpus", type=int, help="CPUs of the embedded Ray (default: all)")


def _config_flags(parser: argparse.ArgumentParser, kind: SweepKind) -> None:
    for flag in FLAGS:
        if kind in flag.paths:
            parser.add_argument(flag.option, help=f"{flag.help} (= --set {flag.paths[kind]}=...)".lstrip())
    parser.add_argument(
        "--set",
        action="append",
        metavar="SECTION.FIELD=VALUE",
        help="set any config field, the value read as YAML (repeatable), e.g. --set train.epochs=3",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    helps = {
        SCALING: "seconds per step and learning curves against D",
        TUNE: "Optuna TPE + ASHA hyperparameter search",
        TRAIN: "one training run with a progress bar",
    }
    for kind in RUNS:
        run = sub.add_parser(kind.command, help=helps[kind])
        _store_flags(run)
        _run_flags(run)
        if kind.sweep:
            presets = f"one of {preset_names()} or a YAML file (default {DEFAULT_PRESET})"
            run.add_argument("--preset", help=presets)
            run.add_argument("--resume", action="store_true", help="continue the sweep --name")
            run.add_argument("--verbose", action="store_true", help="Ray Tune's own progress tables too")
        _config_flags(run, kind)
    scaling = sub.choices[SCALING.command]
    scaling.add_argument("--report", action="store_true", help="build the report afterwards")
    scaling.add_argument("--report-dir", help="default reports/<name>")
    scaling.add_argument("--min-dim", type=int, help="report: secondary log-log slope over D >= this")
    scaling.add_argument("--predict-dims", help=PREDICT_HELP)

    ui = sub.add_parser("ui", help="the MLflow UI on the project's store (127.0.0.1)")
    _store_flags(ui)
    ui.add_argument("--sweep", help="open this sweep's parent run on its charts against D")
    ui.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    ui.add_argument("--port", type=int, default=5000)

    report = sub.add_parser("report", help="the scaling report of one or more sweeps")
    _store_flags(report)
    report.add_argument("--sweep", required=True, help="sweep name(s), comma-separated")
    report.add_argument("--out", help="default reports/<sweep>")
    report.add_argument("--min-dim", type=int, help="secondary log-log slope over D >= this")
    report.add_argument("--predict-dims", help=PREDICT_HELP)
    return parser


def _store_uri(args: argparse.Namespace) -> str:
    """The MLflow store named by ``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else ./runs/mlflow.db."""
    from study.store import default_tracking_uri

    return str(args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri())


def _tracking_uri(args: argparse.Namespace, *, write: bool = True) -> str:
    """:func:`_store_uri`, checked usable (a sqlite file is opened, created if new, written to)."""
    from study.tracking import check_tracking_uri

    uri = _store_uri(args)
    check_tracking_uri(uri, write=write)
    return uri


def _storage_path(args: argparse.Namespace) -> str:
    if args.storage_path and "://" in args.storage_path:  # s3://, gs://: kept as given
        return str(args.storage_path)
    from study.store import default_storage_path

    return str(Path(args.storage_path or default_storage_path()).resolve())


def _start_ray(args: argparse.Namespace, train: Any, gpus_per_trial: float) -> None:
    from study import preflight

    ray_runtime.start_ray(args.address, num_cpus=args.num_cpus)
    signals.install()  # ray.init replaced the SIGTERM handler with one that dumps a stack and aborts
    if args.address:
        preflight.check_cluster_device(train.device, gpus_per_trial)


def _quiet_store_setup() -> None:
    """MLflow announces at INFO that it creates a new store's tables: not the sweep console's business."""
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)


def _default_name(label: str) -> str:
    from study.preflight import default_name

    return default_name(label, time.strftime("%Y%m%d-%H%M%S"))


def ui_hint(uri: str, experiment: str, sweep: str) -> str:
    """The command that opens ``sweep``'s charts, as it must be typed (the store when not the default)."""
    from study.store import default_tracking_uri

    words = [PROG, "ui", "--sweep", sweep]
    if uri != default_tracking_uri():
        words += ["--tracking-uri", uri]
    if experiment != DEFAULT_EXPERIMENT:
        words += ["--experiment", experiment]
    return "see its curves in the MLflow UI: " + shlex.join(words)


# --------------------------------------------------------------------------------------------
# Sweeps: scaling and tune share one skeleton
# --------------------------------------------------------------------------------------------
def _sweep_config(kind: SweepKind, args: argparse.Namespace, storage: str) -> tuple[Any, str]:
    """(config, experiment): built from the flags, or the saved config of the sweep to resume."""
    if not args.resume:
        return build_config(kind, args), args.experiment
    from study.config import config_class, from_dict
    from study.sweep import load_saved_sweep

    if not args.name:
        raise ConfigError("--resume needs the --name of the sweep to continue")
    refuse_changes(kind, args)
    saved = load_saved_sweep(storage, check_sweep_name(args.name))
    if saved.kind != kind.kind:
        raise ConfigError(f"--resume: sweep {args.name!r} is a {saved.kind!r} sweep, not {kind.kind}")
    if args.experiment not in (DEFAULT_EXPERIMENT, saved.experiment):
        raise ConfigError(
            f"--resume: sweep {args.name!r} is in experiment {saved.experiment!r}, not {args.experiment!r}"
        )
    return from_dict(config_class(kind), saved.config), saved.experiment


def _optuna_hint(name: str, storage: str) -> str:
    """Where the Optuna study is; the dashboard command only when optuna-dashboard is installed."""
    if importlib.util.find_spec("optuna_dashboard") is None:
        return f"Optuna study {name!r} in {storage}"
    return f"Optuna study {name!r}: optuna-dashboard {storage}"


def _sweep_name(kind: SweepKind, args: argparse.Namespace, cfg: Any) -> str:
    """``--name``, else the preset (scaling) or the data and method (tune) with a timestamp."""
    if args.name:
        return str(args.name)
    if kind is SCALING:
        return _default_name(Path(args.preset or DEFAULT_PRESET).stem)
    return _default_name(f"tune-{cfg.data.dataset}-{cfg.space.method}")


def _print_grid(kind: SweepKind, args: argparse.Namespace, cfg: Any) -> None:
    """The grid as it will run, before anything starts (a new scaling sweep)."""
    from study.cli_config import overrides_of
    from study.preflight import grid_text

    pairs = [(o.path, o.value) for o in overrides_of(kind, args)]
    print(grid_text(cfg, args.preset or DEFAULT_PRESET, pairs))


def _print_summary(kind: SweepKind, summary: Any, uri: str, storage: str) -> None:
    """Status counts, the retrained results of a search, and where the runs and results are."""
    from study.sweep import optuna_storage_uri

    for line in summary.lines():
        print(line)
    if kind is TUNE and summary.best is not None:
        from study.results import tune_result_lines

        print("\n".join(tune_result_lines(summary.best)))
    print(f"MLflow store: {uri}  (experiment {summary.experiment!r}, parent run {summary.parent_run_id})")
    if kind is TUNE:
        print(_optuna_hint(summary.sweep, optuna_storage_uri(uri)))
    else:
        print(f"Tune results: {storage.rstrip('/')}/{summary.sweep}")


def cmd_sweep(args: argparse.Namespace) -> int:
    from study import viewing

    kind = by_command(args.command)
    report_options = None
    if kind is SCALING and args.report:  # a bad report flag ends the run now, not after the sweep
        report_options = viewing.report_options(args.min_dim, args.predict_dims)
    if args.name:
        check_sweep_name(args.name)
    storage = _storage_path(args)
    cfg, experiment = _sweep_config(kind, args, storage)
    name = _sweep_name(kind, args, cfg)
    preflight_checks(kind, cfg, args)
    if kind is SCALING and not args.resume:
        _print_grid(kind, args, cfg)
    uri = _tracking_uri(args)
    _quiet_store_setup()
    _start_ray(args, cfg.train, cfg.resources.gpus_per_trial)
    from study.finalise import resume_command
    from study.sweep import run_sweep

    try:
        summary = run_sweep(
            kind,
            cfg,
            sweep=name,
            tracking_uri=uri,
            experiment=experiment,
            storage_path=storage,
            resume=args.resume,
            verbose=args.verbose,
        )
    except KeyboardInterrupt:
        hint = resume_command(
            kind, name, tracking_uri=uri, storage_path=storage, experiment=experiment, address=args.address
        )
        print(f"relgrad: sweep {name} interrupted; continue it with: {hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    summary = dataclasses.replace(summary, experiment=experiment, address=args.address)
    _print_summary(kind, summary, uri, storage)
    code = int(summary.exit_code)  # 0 all ended ok/diverged/skipped, 1 some failed, 130 cut short
    if code == EXIT_INTERRUPTED:
        return code
    if report_options is not None:
        code = max(code, viewing.build_report([name], uri, experiment, args.report_dir, report_options))
    print(ui_hint(uri, experiment, name))
    return code


# --------------------------------------------------------------------------------------------
# One training run
# --------------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from study.config import SingleRun, flatten, to_dict

    if args.name:
        check_sweep_name(args.name)
    cfg: SingleRun = build_config(TRAIN, args)
    name = args.name or _default_name(f"train-{cfg.data.dataset}-{cfg.method}")
    point = cfg.point() | {"dim": preflight_checks(TRAIN, cfg, args).dim}  # a data set's own dimension
    uri = _tracking_uri(args)
    _quiet_store_setup()
    if args.address:  # run it on the cluster (where the GPUs are), no progress bar
        _start_ray(args, cfg.train, 1.0)
    from study import tracking
    from study.curves import CurveAxes, ParentCurves
    from study.sweep import prepare_tracking
    from study.trial import SweepContext, run_in_worker, run_logged

    params = flatten({"data": to_dict(cfg.data), "train": to_dict(cfg.train)}) | {
        k: str(v) for k, v in point.items()
    }
    tctx = prepare_tracking(uri, args.experiment, name, TRAIN.kind, params, resume=False)
    ctx = SweepContext(tracking=tctx, data=cfg.data, train=cfg.train, extra_params={"sweep_kind": TRAIN.kind})
    ok, closed_as = False, None
    try:
        if args.address:
            import ray

            gpus = 1 if cfg.train.device.startswith("cuda") else 0
            task = ray.remote(run_in_worker).options(num_gpus=gpus)
            outcome = ray.get(task.remote(point, ctx, TRAIN.command))
        else:
            outcome = run_logged(point, ctx, TRAIN.command, progress=True)
        ok = outcome.status == STATUS_OK
        if ok:  # the parent's curves, as a sweep's: one point at this D
            ParentCurves(uri, tctx.parent_run_id, CurveAxes()).log(point, outcome.metrics)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the run has recorded itself interrupted
        closed_as = "KILLED"
        print(f"\nrelgrad: run {name} interrupted (recorded as such); run the command again", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:  # the parent never stays RUNNING, whatever happened to the run
        tracking.finish_parent(uri, tctx.parent_run_id, ok=ok, run_status=closed_as)
    from study.results import train_result_line

    print(f"\n{train_result_line(name, outcome)}")
    print(f"MLflow store: {uri}  (experiment {args.experiment!r})")
    print(ui_hint(uri, args.experiment, name))
    return EXIT_OK if ok else EXIT_FAILED


# --------------------------------------------------------------------------------------------
# UI and reports (the work is in study.ui and study.viewing)
# --------------------------------------------------------------------------------------------
def cmd_ui(args: argparse.Namespace) -> int:
    from study.ui import open_ui

    return open_ui(_store_uri(args), args.host, args.port, args.experiment, args.sweep)


def cmd_report(args: argparse.Namespace) -> int:
    from study import viewing

    sweeps = parse_str_list(args.sweep)
    if not sweeps:
        raise ConfigError("--sweep: give at least one sweep name")
    options = viewing.report_options(args.min_dim, args.predict_dims)
    # reading must not create an empty store: look for the file before the URI check opens it
    viewing.require_store(_store_uri(args))
    # a report of a read-only store is still written; that MLflow cannot take a copy is then said
    return viewing.build_report(sweeps, _tracking_uri(args, write=False), args.experiment, args.out, options)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    **{kind.command: cmd_sweep for kind in RUNS if kind.sweep},
    TRAIN.command: cmd_train,
    "ui": cmd_ui,
    "report": cmd_report,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code (SIGTERM handled like Ctrl-C, but exit 143 rather than 130)."""
    with signals.handled():
        code = _run(argv)
        if argv is None:  # the program (not a call from Python): stop the Ray it started, at once
            ray_runtime.stop_started_ray()
        if code == EXIT_INTERRUPTED and signals.terminated():
            print(f"relgrad: stopped by SIGTERM (exit code {signals.EXIT_TERMINATED})", file=sys.stderr)
            return signals.EXIT_TERMINATED
        return code


def _run(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"relgrad: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ImportError as exc:
        if "RELGRAD_PLUGINS" not in str(exc):  # a broken install is a bug to see in full
            raise
        print(f"relgrad: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("relgrad: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
