"""The ``relgrad`` command: ``scaling``, ``tune``, ``train``, ``ui`` and ``report``.

Exit codes: 0 done, 2 bad input (a one-line message, no traceback, before Ray starts or any run is
recorded), 130 interrupted by Ctrl-C and 143 by SIGTERM (continue with ``--resume``), 1 some trials
failed or anything else.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from study import preflight, ray_runtime, signals, viewing  # ray_runtime first: embedded Ray on loopback
from study.config import (
    SYNTHETIC_DATASETS,
    ConfigError,
    HpoConfig,
    ScalingConfig,
    Section,
    SingleRun,
    flatten,
    from_dict,
    load_preset,
    parse_float_list,
    parse_int_list,
    parse_str_list,
    preset_names,
    to_dict,
    with_overrides,
)
from study.parsing import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    parse_assignment,
    parse_yaml_value,
)
from study.tracking import (
    DEFAULT_EXPERIMENT,
    check_sweep_name,
    check_tracking_uri,
    default_storage_path,
    default_tracking_uri,
)

SWEEPS, RUNS = ("scaling", "tune"), ("scaling", "tune", "train")
DEFAULT_PRESET = "quick"


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so ``main`` returns its exit code."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message}")


# --------------------------------------------------------------------------------------------
# Short flags: each is ``--set <path>=<value>`` for the commands it applies to
# --------------------------------------------------------------------------------------------
def _text(text: str, what: str) -> str:
    return text


def _names(text: str, what: str) -> list[str]:
    return parse_str_list(text)


def _absolute(text: str, what: str) -> str:
    return str(Path(text).expanduser().resolve())


@dataclass(frozen=True)
class Flag:
    """``option VALUE`` sets the config field ``paths[command]`` to ``parse(VALUE)`` (YAML by default)."""

    option: str
    paths: dict[str, str]
    help: str = ""
    parse: Callable[[str, str], Any] = parse_yaml_value


def _on(commands: Sequence[str], path: str) -> dict[str, str]:
    return dict.fromkeys(commands, path)


FLAGS: tuple[Flag, ...] = (
    Flag("--methods", {"scaling": "methods"}, "e.g. relative,ordinary", _names),
    Flag("--dims", {"scaling": "dims"}, "e.g. 64,128,256 or 64:1024:x2", parse_int_list),
    Flag("--depths", {"scaling": "depths"}, "e.g. 1,2", parse_int_list),
    Flag("--batch-sizes", {"scaling": "batch_sizes"}, "e.g. 64,128", parse_int_list),
    Flag("--lrs", {"scaling": "lrs"}, "e.g. 1e-4,1e-3 or 1e-4:1e-2:x10", parse_float_list),
    Flag("--budget-s", {"scaling": "budget_s"}, "per-step budget in seconds"),
    Flag("--method", {"tune": "space.method", "train": "method"}, "gradient method", _text),
    Flag("--samples", {"tune": "space.samples"}, "number of trials"),
    Flag("--dim", {"tune": "data.dim", "train": "dim"}, "dimension of teacher/noise data"),
    Flag("--depth", {"train": "depth"}),
    Flag("--batch-size", {"train": "batch_size"}),
    Flag("--lr", {"train": "lr"}),
    Flag("--alpha", {"scaling": "alpha", "train": "alpha"}, "slope of the smooth leaky ReLU"),
    Flag("--seed", {"scaling": "seed", "tune": "space.seed", "train": "seed"}),
    Flag("--dataset", _on(RUNS, "data.dataset"), "a name of the core's data registry", _text),
    Flag("--data-file", _on(RUNS, "data.file"), "your data: .npy, .npz (train/val/test) or .csv", _absolute),
    Flag("--n-train", _on(RUNS, "data.n_train"), "training rows of generated data"),
    Flag("--epochs", _on(RUNS, "train.epochs"), "evaluations per trial"),
    Flag("--steps", _on(RUNS, "train.max_steps"), "training steps per trial (max)"),
    Flag("--steps-per-epoch", _on(RUNS, "train.steps_per_epoch"), "steps between evaluations"),
    Flag("--patience", _on(RUNS, "train.patience"), "evaluations without improvement before stopping"),
    Flag("--train-budget-s", _on(RUNS, "train.time_budget_s"), "wall-clock cap on training per trial"),
    Flag("--optimizer", _on(RUNS, "train.optimizer"), "one of the core's optimizers", _text),
    Flag("--device", _on(RUNS, "train.device"), "auto | cpu | cuda | cuda:N", _text),
    Flag("--dtype", _on(RUNS, "train.dtype"), "float32 | float64", _text),
    Flag("--cpus-per-trial", _on(SWEEPS, "resources.cpus_per_trial")),
    Flag("--gpus-per-trial", _on(SWEEPS, "resources.gpus_per_trial")),
    Flag("--max-concurrent", _on(SWEEPS, "resources.max_concurrent"), "at most this many trials at once"),
)


def _dest(flag: Flag) -> str:
    return flag.option.lstrip("-").replace("-", "_")


def _overrides(command: str, args: argparse.Namespace) -> list[tuple[str, Any]]:
    """The short flags given, then every ``--set`` (in order: a later one wins)."""
    given = [(flag, getattr(args, _dest(flag))) for flag in FLAGS if command in flag.paths]
    pairs = [(f.paths[command], f.parse(value, f.option)) for f, value in given if value is not None]
    return pairs + [parse_assignment(text) for text in args.set or []]


# --------------------------------------------------------------------------------------------
# Argument parsing
# --------------------------------------------------------------------------------------------
def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="sweep name: letters, digits, . _ - (default: preset + timestamp)")
    parser.add_argument(
        "--tracking-uri",
        help="MLflow store: http://host:port for a server (default: sqlite under ./runs)",
    )
    parser.add_argument("--address", help="Ray cluster address (e.g. auto); default: embedded Ray")
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="MLflow experiment name")
    parser.add_argument(
        "--storage-path", help="Tune results folder (default ./runs/ray_results; shared FS on clusters)"
    )
    parser.add_argument("--num-cpus", type=int, help="CPUs of the embedded Ray (default: all)")


def _config_flags(parser: argparse.ArgumentParser, command: str) -> None:
    for flag in FLAGS:
        if command in flag.paths:
            parser.add_argument(flag.option, help=f"{flag.help} (= --set {flag.paths[command]}=...)".lstrip())
    parser.add_argument(
        "--set",
        action="append",
        metavar="SECTION.FIELD=VALUE",
        help="set any config field, the value read as YAML (repeatable), e.g. --set train.epochs=3",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="relgrad", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    helps = {
        "scaling": "seconds per step and learning curves against D",
        "tune": "Optuna TPE + ASHA hyperparameter search",
        "train": "one training run with a progress bar",
    }
    for command in RUNS:
        run = sub.add_parser(command, help=helps[command])
        _common(run)
        if command in SWEEPS:
            presets = f"one of {preset_names()} or a YAML file (default {DEFAULT_PRESET})"
            run.add_argument("--preset", help=presets)
            run.add_argument("--resume", action="store_true", help="continue the sweep --name")
        _config_flags(run, command)
    scaling = sub.choices["scaling"]
    scaling.add_argument("--report", action="store_true", help="build the report afterwards")
    scaling.add_argument("--report-dir", help="default reports/<name>")
    scaling.add_argument("--min-dim", type=int, help="report: secondary log-log slope over D >= this")
    scaling.add_argument("--predict-dims", help=viewing.PREDICT_HELP)

    ui = sub.add_parser("ui", help="the MLflow UI on the project's store")
    _common(ui)
    ui.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    ui.add_argument("--port", type=int, default=5000)

    report = sub.add_parser("report", help="the scaling report of one or more sweeps")
    _common(report)
    report.add_argument("--sweep", required=True, help="sweep name(s), comma-separated")
    report.add_argument("--out", help="default reports/<sweep>")
    report.add_argument("--min-dim", type=int, help="secondary log-log slope over D >= this")
    report.add_argument("--predict-dims", help=viewing.PREDICT_HELP)
    return parser


# --------------------------------------------------------------------------------------------
# Config assembly (preset or defaults + flags + --set), validated before anything runs
# --------------------------------------------------------------------------------------------
def build_config(command: str, args: argparse.Namespace) -> Any:
    """The validated config of ``command``: its base (a preset, or SingleRun's defaults) + overrides."""
    base: Section
    if command == "train":
        base = SingleRun()
    else:
        preset = load_preset(args.preset or DEFAULT_PRESET)
        base = preset.scaling if command == "scaling" else preset.tune
    overrides = preflight.user_grid(command, _overrides(command, args))  # --dims sets preset caps aside
    return _with_data_file(with_overrides(base, overrides), command, args)


def _with_data_file(cfg: Any, command: str, args: argparse.Namespace) -> Any:
    """A data file sets the dimension: read it once here so that a bad file ends the run in one line."""
    if cfg.data.file is None:
        return cfg
    for dest in ("dataset", "dims", "dim"):
        if getattr(args, dest, None) is not None:
            raise ConfigError(
                f"--{dest} and --data-file: give one (the file sets the data and its dimension)"
            )
    data = preflight.read_data_file(cfg.data.file, seed=_seed(cfg), standardize=cfg.data.standardize)
    dim_path, dim = {"scaling": ("dims", [data.dim]), "tune": ("data.dim", data.dim)}.get(
        command, ("dim", data.dim)
    )
    return with_overrides(cfg, [("data.file", data.path), (dim_path, dim)])


def _seed(cfg: Any) -> int:
    return int(cfg.space.seed if isinstance(cfg, HpoConfig) else cfg.seed)


def _data_shape(command: str, cfg: Any) -> preflight.DataShape:
    """Dimension and rows of the run's data: a file or a named set is read (once); generated data sized."""
    if cfg.data.file is not None:
        return preflight.read_data_file(cfg.data.file, seed=_seed(cfg), standardize=cfg.data.standardize)
    if cfg.data.dataset not in SYNTHETIC_DATASETS:
        return preflight.named_dataset(cfg.data, _seed(cfg), f"{cfg.where}.data.dataset")
    dim = {"scaling": None, "tune": cfg.data.dim, "train": getattr(cfg, "dim", None)}[command]
    return preflight.DataShape(dim or 0, preflight.data_rows(cfg.data))


def _shapes(command: str, cfg: Any, data: preflight.DataShape) -> list[preflight.Shape]:
    """The largest trial of each method (the memory check needs no other)."""
    if command == "scaling":
        depth, batch = max(cfg.depths), max(cfg.batch_sizes)
        return [
            preflight.Shape(m, max(cfg.dims_of(m)), depth, batch, data.rows)
            for m in cfg.methods
            if cfg.dims_of(m)
        ]
    if command == "tune":
        space = cfg.space
        return [preflight.Shape(space.method, data.dim, max(space.depths), max(space.batch_sizes), data.rows)]
    return [preflight.Shape(cfg.method, data.dim, cfg.depth, cfg.batch_size, data.rows)]


def _preflight(command: str, cfg: Any, args: argparse.Namespace) -> preflight.DataShape:
    """The data's shape (a file or a named set read once), then device and memory on this machine (for
    embedded runs; a cluster's device is checked once Ray is up)."""
    data = _data_shape(command, cfg)
    if not args.address:
        preflight.check_device(cfg.train.device, f"{cfg.where}.train.device")
        if command in SWEEPS:
            res = cfg.resources
            preflight.check_local_resources(res.cpus_per_trial, res.gpus_per_trial, args.num_cpus)
        preflight.check_memory(_shapes(command, cfg, data), cfg.train)
    return data


def _store_uri(args: argparse.Namespace) -> str:
    """The MLflow store named by ``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else ./runs/mlflow.db."""
    return str(args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri())


def _tracking_uri(args: argparse.Namespace, *, write: bool = True) -> str:
    """:func:`_store_uri`, checked usable (a sqlite file is opened, created if new, written to)."""
    uri = _store_uri(args)
    check_tracking_uri(uri, write=write)
    return uri


def _storage_path(args: argparse.Namespace) -> str:
    if args.storage_path and "://" in args.storage_path:  # s3://, gs://: kept as given
        return str(args.storage_path)
    return str(Path(args.storage_path or default_storage_path()).resolve())


def _start_ray(args: argparse.Namespace, train: Any, gpus_per_trial: float) -> None:
    ray_runtime.start_ray(args.address, num_cpus=args.num_cpus)
    signals.install()  # ray.init replaced the SIGTERM handler with one that dumps a stack and aborts
    if args.address:
        preflight.check_cluster_device(train.device, gpus_per_trial)


def _ui_hint(uri: str) -> str:
    if uri.startswith("http"):
        return f"MLflow UI: {uri}"
    return "open the MLflow UI with: relgrad ui  (then http://127.0.0.1:5000)"


# --------------------------------------------------------------------------------------------
# Sweeps: scaling and tune share one skeleton
# --------------------------------------------------------------------------------------------
def _sweep_config(command: str, args: argparse.Namespace, storage: str) -> tuple[Any, str]:
    """(config, experiment): built from the flags, or the saved config of the sweep to resume."""
    if not args.resume:
        return build_config(command, args), args.experiment
    from study.sweep import load_saved_config

    if not args.name:
        raise ConfigError("--resume needs the --name of the sweep to continue")
    _refuse_changes(command, args)
    saved = load_saved_config(storage, check_sweep_name(args.name))
    kind, cls = ("scaling", ScalingConfig) if command == "scaling" else ("hpo", HpoConfig)
    if saved.get("kind") != kind:
        raise ConfigError(f"--resume: sweep {args.name!r} is a {saved.get('kind')!r} sweep, not {kind}")
    experiment = saved.get("experiment", DEFAULT_EXPERIMENT)
    if args.experiment not in (DEFAULT_EXPERIMENT, experiment):
        raise ConfigError(
            f"--resume: sweep {args.name!r} is in experiment {experiment!r}, not {args.experiment!r}"
        )
    return from_dict(cls, saved.get("config")), experiment


def _refuse_changes(command: str, args: argparse.Namespace) -> None:
    """A resumed sweep runs the grid and data it was started with: a flag that would change them is an
    error (applying it to half a sweep would mix two studies in one), not silently ignored."""
    given = [f.option for f in FLAGS if command in f.paths and getattr(args, _dest(f)) is not None]
    given += ["--set"] * bool(args.set) + ["--preset"] * (args.preset is not None)
    if given:
        raise ConfigError(
            f"--resume runs sweep {args.name!r} with the config it was started with; {', '.join(given)} "
            "would change it: drop them, or start a new sweep with another --name"
        )


def cmd_sweep(args: argparse.Namespace) -> int:
    from study import sweep
    from study.finalise import resume_command

    command = args.command
    report_options = None
    if command == "scaling" and args.report:  # a bad report flag ends the run now, not after the sweep
        report_options = viewing.report_options(args.min_dim, args.predict_dims)
    storage = _storage_path(args)
    cfg, experiment = _sweep_config(command, args, storage)
    if command == "scaling":
        preset = Path(args.preset or DEFAULT_PRESET).stem
        name = args.name or preflight.default_name(preset, time.strftime("%Y%m%d-%H%M%S"))
    else:
        label = f"tune-{cfg.data.dataset}-{cfg.space.method}"
        name = args.name or preflight.default_name(label, time.strftime("%Y%m%d-%H%M%S"))
    check_sweep_name(name)
    _preflight(command, cfg, args)
    if command == "scaling" and not args.resume:  # the grid as it will run, before anything starts
        print(preflight.grid_text(cfg, args.preset or DEFAULT_PRESET, _overrides(command, args)))
    uri = _tracking_uri(args)
    _start_ray(args, cfg.train, cfg.resources.gpus_per_trial)
    run = sweep.run_scaling if command == "scaling" else sweep.run_hpo
    try:
        summary = run(
            cfg, sweep=name, tracking_uri=uri, experiment=experiment, storage_path=storage, resume=args.resume
        )
    except KeyboardInterrupt:
        hint = resume_command(
            command, name, tracking_uri=uri, storage_path=storage, experiment=experiment, address=args.address
        )
        print(f"relgrad: sweep {name} interrupted; continue it with: {hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    summary = dataclasses.replace(summary, experiment=experiment, address=args.address)
    for line in summary.lines():
        print(line)
    if command == "tune" and summary.best is not None:
        from study.results import tune_result_lines

        print("\n".join(tune_result_lines(summary.best)))
    print(f"MLflow store: {uri}  (experiment {experiment!r}, parent run {summary.parent_run_id})")
    if command == "tune":
        print(f"Optuna study {name!r}: optuna-dashboard {sweep.optuna_storage_uri(uri)}")
    else:
        print(f"Tune results: {storage.rstrip('/')}/{name}")
    code = int(summary.exit_code)  # 0 all ended ok/diverged/skipped, 1 some failed, 130 cut short
    if code == EXIT_INTERRUPTED:
        return code
    if report_options is not None:
        code = max(code, viewing.build_report([name], uri, experiment, args.report_dir, report_options))
    print(_ui_hint(uri))
    return code


# --------------------------------------------------------------------------------------------
# One training run
# --------------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from study import tracking
    from study.sweep import prepare_tracking
    from study.trial import SweepContext, run_logged

    cfg: SingleRun = build_config("train", args)
    label = f"train-{cfg.data.dataset}-{cfg.method}"
    name = check_sweep_name(args.name or preflight.default_name(label, time.strftime("%Y%m%d-%H%M%S")))
    point = cfg.point() | {"dim": _preflight("train", cfg, args).dim}  # a data set's own dimension
    uri = _tracking_uri(args)
    if args.address:  # run it on the cluster (where the GPUs are), no progress bar
        _start_ray(args, cfg.train, 1.0)
    params = flatten({"data": to_dict(cfg.data), "train": to_dict(cfg.train)}) | {
        k: str(v) for k, v in point.items()
    }
    tctx = prepare_tracking(uri, args.experiment, name, "train", params, resume=False)
    ctx = SweepContext(tracking=tctx, data=cfg.data, train=cfg.train, extra_params={"sweep_kind": "train"})
    ok, closed_as = False, None
    try:
        if args.address:
            import ray

            gpus = 1 if cfg.train.device.startswith("cuda") else 0
            task = ray.remote(run_logged).options(num_gpus=gpus)
            outcome = ray.get(task.remote(point, ctx, "train"))
        else:
            outcome = run_logged(point, ctx, "train", progress=True)
        ok = outcome.status == "ok"
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the run has recorded itself interrupted
        closed_as = "KILLED"
        print(f"\nrelgrad: run {name} interrupted (recorded as such); run the command again", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:  # the parent never stays RUNNING, whatever happened to the run
        tracking.finish_parent(uri, tctx.parent_run_id, ok=ok, run_status=closed_as)
    from study.results import train_result_line

    print(f"\n{train_result_line(name, outcome)}")
    print(f"MLflow store: {uri}  (experiment {args.experiment!r})")
    print(_ui_hint(uri))
    return EXIT_OK if ok else EXIT_FAILED


# --------------------------------------------------------------------------------------------
# UI and reports (the work is in study.viewing)
# --------------------------------------------------------------------------------------------
def cmd_ui(args: argparse.Namespace) -> int:
    return viewing.open_ui(_store_uri(args), args.host, args.port)


def cmd_report(args: argparse.Namespace) -> int:
    sweeps = parse_str_list(args.sweep)
    if not sweeps:
        raise ConfigError("--sweep: give at least one sweep name")
    options = viewing.report_options(args.min_dim, args.predict_dims)
    # reading must not create an empty store: look for the file before the URI check opens it
    viewing.require_store(_store_uri(args))
    # a report of a read-only store is still written; that MLflow cannot take a copy is then said
    return viewing.build_report(sweeps, _tracking_uri(args, write=False), args.experiment, args.out, options)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "scaling": cmd_sweep,
    "tune": cmd_sweep,
    "train": cmd_train,
    "ui": cmd_ui,
    "report": cmd_report,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code (SIGTERM handled like Ctrl-C, but exit 143 rather than 130)."""
    with signals.handled():
        code = _run(argv)
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
