"""The ``relgrad`` command: ``scaling``, ``tune``, ``train``, ``ui`` and ``report``.

Exit codes: 0 done, 2 bad input (a one-line message, no traceback, before any trial starts),
130 interrupted (continue with ``--resume``), 1 anything else.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from study.config import (
    ConfigError,
    HpoConfig,
    ScalingConfig,
    load_preset,
    parse_float_list,
    parse_int_list,
    parse_str_list,
    preset_names,
    validate_hpo,
    validate_scaling,
)
from study.tracking import DEFAULT_EXPERIMENT, check_tracking_uri, default_tracking_uri

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so ``main`` returns its exit code."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message}")


# --------------------------------------------------------------------------------------------
# Argument parsing
# --------------------------------------------------------------------------------------------
def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="sweep name (default: preset + timestamp)")
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


def _resources(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cpus-per-trial", type=float)
    parser.add_argument("--gpus-per-trial", type=float)
    parser.add_argument("--max-concurrent", type=int, help="at most this many trials at once")
    parser.add_argument("--epochs", type=int, help="evaluations per trial")
    parser.add_argument("--steps", type=int, help="training steps per trial (max)")
    parser.add_argument("--steps-per-epoch", type=int, help="steps between evaluations")
    parser.add_argument("--train-budget-s", type=float, help="wall-clock cap on training per trial")
    parser.add_argument("--device", help="auto | cpu | cuda")
    parser.add_argument("--dataset")
    parser.add_argument("--resume", action="store_true", help="continue the sweep --name")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="relgrad", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    scaling = sub.add_parser("scaling", help="seconds per step and learning curves against D")
    _common(scaling)
    scaling.add_argument("--preset", default="quick", help=f"one of {preset_names()} or a YAML")
    scaling.add_argument("--methods", help="e.g. relative,ordinary")
    scaling.add_argument("--dims", help="e.g. 64,128,256 or 64:1024:x2")
    scaling.add_argument("--depths", help="e.g. 1,2")
    scaling.add_argument("--batch-sizes", help="e.g. 64,128")
    scaling.add_argument("--lrs", help="e.g. 1e-4,1e-3 or 1e-4:1e-2:x10")
    scaling.add_argument("--budget-s", type=float, help="per-step budget in seconds")
    _resources(scaling)
    scaling.add_argument("--report", action="store_true", help="build the report afterwards")
    scaling.add_argument("--report-dir", help="default reports/<name>")
    scaling.add_argument("--min-dim", type=int, help="report: fit exponents over D >= this")

    tune = sub.add_parser("tune", help="Optuna TPE + ASHA hyperparameter search")
    _common(tune)
    tune.add_argument("--preset", default="quick", help=f"one of {preset_names()} or a YAML")
    tune.add_argument("--method")
    tune.add_argument("--samples", type=int, help="number of trials")
    tune.add_argument("--dim", type=int, help="dimension of teacher/noise data")
    tune.add_argument("--seed", type=int)
    _resources(tune)

    train = sub.add_parser("train", help="one training run with a progress bar")
    _common(train)
    train.add_argument("--dataset", default="teacher")
    train.add_argument("--method", default="relative")
    train.add_argument("--dim", type=int, default=64, help="dimension of teacher/noise data")
    train.add_argument("--depth", type=int, default=2)
    train.add_argument("--batch-size", type=int, default=100)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--alpha", type=float, default=0.3)
    train.add_argument("--epochs", type=int, default=50)
    train.add_argument("--steps-per-epoch", type=int)
    train.add_argument("--steps", type=int, help="max training steps")
    train.add_argument("--patience", type=int, default=30)
    train.add_argument("--train-budget-s", type=float)
    train.add_argument("--n-train", type=int, default=10000)
    train.add_argument("--device", default="auto")
    train.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    train.add_argument("--seed", type=int, default=0)

    ui = sub.add_parser("ui", help="the MLflow UI on the project's store")
    _common(ui)
    ui.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    ui.add_argument("--port", type=int, default=5000)

    report = sub.add_parser("report", help="the scaling report of one or more sweeps")
    _common(report)
    report.add_argument("--sweep", required=True, help="sweep name(s), comma-separated")
    report.add_argument("--out", help="default reports/<sweep>")
    report.add_argument("--min-dim", type=int)
    return parser


# --------------------------------------------------------------------------------------------
# Config assembly (preset + overrides), validated before anything runs
# --------------------------------------------------------------------------------------------
def _apply_run_overrides(cfg: ScalingConfig | HpoConfig, args: argparse.Namespace) -> None:
    res, train = cfg.resources, cfg.train
    if args.cpus_per_trial is not None:
        res.cpus_per_trial = args.cpus_per_trial
    if args.gpus_per_trial is not None:
        res.gpus_per_trial = args.gpus_per_trial
    if args.max_concurrent is not None:
        res.max_concurrent = args.max_concurrent
    if args.epochs is not None:
        train.epochs = args.epochs
    if args.steps is not None:
        train.max_steps = args.steps
    if args.steps_per_epoch is not None:
        train.steps_per_epoch = args.steps_per_epoch
    if args.train_budget_s is not None:
        train.time_budget_s = args.train_budget_s
    if args.device is not None:
        train.device = args.device
    if args.dataset is not None:
        cfg.data.dataset = args.dataset


def scaling_config(args: argparse.Namespace) -> ScalingConfig:
    cfg = load_preset(args.preset).scaling
    if args.methods is not None:
        cfg.methods = parse_str_list(args.methods)
    if args.dims is not None:
        cfg.dims = parse_int_list(args.dims, "--dims")
    if args.depths is not None:
        cfg.depths = parse_int_list(args.depths, "--depths")
    if args.batch_sizes is not None:
        cfg.batch_sizes = parse_int_list(args.batch_sizes, "--batch-sizes")
    if args.lrs is not None:
        cfg.lrs = parse_float_list(args.lrs, "--lrs")
    if args.budget_s is not None:
        cfg.budget_s = args.budget_s
    _apply_run_overrides(cfg, args)
    validate_scaling(cfg)
    return cfg


def hpo_config(args: argparse.Namespace) -> HpoConfig:
    cfg = load_preset(args.preset).tune
    if args.method is not None:
        cfg.space.method = args.method
    if args.samples is not None:
        cfg.space.samples = args.samples
    if args.seed is not None:
        cfg.space.seed = args.seed
    if args.dim is not None:
        cfg.data.dim = args.dim
    _apply_run_overrides(cfg, args)
    validate_hpo(cfg)
    return cfg


def _tracking_uri(args: argparse.Namespace) -> str:
    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    check_tracking_uri(uri)
    return uri


def _storage_path(args: argparse.Namespace) -> str:
    if args.storage_path and "://" in args.storage_path:  # s3://, gs://: kept as given
        return str(args.storage_path)
    return str(Path(args.storage_path or Path.cwd() / "runs" / "ray_results").resolve())


def _connect_ray(args: argparse.Namespace) -> None:
    """Embedded Ray unless ``--address``; an already-initialised Ray (tests, notebooks) is reused."""
    import ray

    if ray.is_initialized():
        return
    try:
        if args.address:
            ray.init(address=args.address, log_to_driver=True)
        else:
            ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = args.address or "local"
        raise ConfigError(f"cannot start or reach Ray at {where!r}: {exc}") from None


def _ui_hint(uri: str) -> str:
    if uri.startswith("http"):
        return f"MLflow UI: {uri}"
    return "open the MLflow UI with: relgrad ui  (then http://127.0.0.1:5000)"


# --------------------------------------------------------------------------------------------
# Subcommands
# --------------------------------------------------------------------------------------------
def cmd_scaling(args: argparse.Namespace) -> int:
    from study.sweep import load_saved_config, run_scaling, scaling_from_saved

    storage = _storage_path(args)
    if args.resume:
        if not args.name:
            raise ConfigError("--resume needs the --name of the sweep to continue")
        saved = load_saved_config(storage, args.name)
        cfg, experiment = scaling_from_saved(saved), saved.get("experiment", args.experiment)
        validate_scaling(cfg)
    else:
        cfg, experiment = scaling_config(args), args.experiment
    name = args.name or f"{Path(args.preset).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    uri = _tracking_uri(args)
    _connect_ray(args)
    summary = run_scaling(
        cfg,
        sweep=name,
        tracking_uri=uri,
        experiment=experiment,
        storage_path=storage,
        resume=args.resume,
    )
    print(f"\nsweep {name}: " + ", ".join(f"{n} {s}" for s, n in sorted(summary.statuses.items())))
    print(f"MLflow store: {uri}  (experiment {experiment!r}, parent run {summary.parent_run_id})")
    print(f"Tune results: {storage.rstrip('/')}/{name}")
    if not summary.complete:
        print(f"sweep interrupted; continue it with: relgrad scaling --name {name} --resume")
        return EXIT_INTERRUPTED
    code = EXIT_OK
    if args.report:
        code = _build_report([name], uri, experiment, args.report_dir, args.min_dim)
    print(_ui_hint(uri))
    return code


def cmd_tune(args: argparse.Namespace) -> int:
    from study.sweep import load_saved_config, run_hpo

    storage = _storage_path(args)
    if args.resume:
        if not args.name:
            raise ConfigError("--resume needs the --name of the sweep to continue")
        saved = load_saved_config(storage, args.name)
        if saved.get("kind") != "hpo":
            raise ConfigError(f"--resume: sweep {args.name!r} is not an HPO sweep")
        from study.config import from_dict

        cfg, experiment = from_dict(HpoConfig, saved["config"], "tune"), saved["experiment"]
    else:
        cfg, experiment = hpo_config(args), args.experiment
    name = args.name or f"tune-{cfg.data.dataset}-{cfg.space.method}-{time.strftime('%Y%m%d-%H%M%S')}"
    uri = _tracking_uri(args)
    _connect_ray(args)
    summary = run_hpo(
        cfg,
        sweep=name,
        tracking_uri=uri,
        experiment=experiment,
        storage_path=storage,
        resume=args.resume,
    )
    print(f"\nsweep {name}: " + ", ".join(f"{n} {s}" for s, n in sorted(summary.statuses.items())))
    if summary.best is not None:
        shown = {k: summary.best.get(k) for k in ("lr", "depth", "alpha", "batch_size")}
        print(
            f"best config {shown}: val LL {summary.best.get('_val_ll', float('nan')):.4f}, "
            f"retrained test LL {summary.best.get('test_ll', float('nan')):.4f}"
        )
    from study.sweep import optuna_storage_uri

    print(f"MLflow store: {uri}  (experiment {experiment!r})")
    print(f"Optuna study {name!r}: optuna-dashboard {optuna_storage_uri(uri)}")
    if not summary.complete:
        print(f"sweep interrupted; continue it with: relgrad tune --name {name} --resume")
        return EXIT_INTERRUPTED
    print(_ui_hint(uri))
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from study import tracking
    from study.config import DataConfig, TrainConfig, flatten
    from study.trial import SweepContext, run_logged

    data = DataConfig(dataset=args.dataset, n_train=args.n_train, dim=args.dim)
    train = TrainConfig(
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        max_steps=args.steps,
        time_budget_s=args.train_budget_s,
        patience=args.patience,
        device=args.device,
        dtype=args.dtype,
    )
    cfg = ScalingConfig(
        methods=[args.method],
        dims=[args.dim],
        depths=[args.depth],
        batch_sizes=[args.batch_size],
        lrs=[args.lr],
        alpha=args.alpha,
        seed=args.seed,
        data=data,
        train=train,
    )
    point = _train_point(cfg)
    name = args.name or f"train-{args.dataset}-{args.method}-{time.strftime('%Y%m%d-%H%M%S')}"
    uri = _tracking_uri(args)
    from study.sweep import prepare_tracking

    params = flatten({"data": vars(data), "train": vars(train)}) | {k: str(v) for k, v in point.items()}
    tctx = prepare_tracking(uri, args.experiment, name, "train", params, resume=False)
    ctx = SweepContext(tracking=tctx, data=data, train=train, extra_params={"sweep_kind": "train"})
    if args.address:  # run it on the cluster (where the GPUs are), no progress bar
        import ray

        _connect_ray(args)
        outcome = ray.get(ray.remote(run_logged).remote(point, ctx, "train"))
    else:
        outcome = run_logged(point, ctx, "train", progress=True)
    tracking.finish_parent(uri, tctx.parent_run_id, ok=outcome.status == "ok")
    shown = ", ".join(f"{k} {v:.4g}" for k, v in outcome.metrics.items())
    print(f"\n{name}: {outcome.status} ({outcome.reason}); {shown}")
    print(f"MLflow store: {uri}  (experiment {args.experiment!r})")
    print(_ui_hint(uri))
    return EXIT_OK if outcome.status == "ok" else EXIT_ERROR


def _train_point(cfg: ScalingConfig) -> dict[str, Any]:
    """Validate a one-run config; a named data set gets its own dimension (loaded once)."""
    from study.config import SYNTHETIC_DATASETS, known_datasets
    from study.sweep import dataset_dim

    dataset = cfg.data.dataset
    if dataset not in known_datasets():
        raise ConfigError(f"--dataset: unknown dataset {dataset!r}; known: {', '.join(known_datasets())}")
    if dataset in SYNTHETIC_DATASETS:
        validate_scaling(cfg)
        return cfg.points()[0]
    cfg.data.dataset = SYNTHETIC_DATASETS[0]  # the other checks of a scaling config still apply
    try:
        validate_scaling(cfg)
    finally:
        cfg.data.dataset = dataset
    point = cfg.points()[0]
    point["dim"] = dataset_dim(HpoConfig(data=cfg.data))
    return point


def cmd_ui(args: argparse.Namespace) -> int:
    from study.tracking import default_artifact_root, sqlite_path

    uri = args.tracking_uri or default_tracking_uri()
    if uri.startswith("http"):
        print(f"the store is a tracking server: open {uri}")
        return EXIT_OK
    path = sqlite_path(uri)
    if path is not None and not path.exists():
        raise ConfigError(f"no MLflow store at {path} yet; run a sweep first (relgrad scaling)")
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    artifacts = default_artifact_root(uri)
    if artifacts is not None:
        command += ["--default-artifact-root", artifacts]
    print(f"MLflow UI on http://{args.host}:{args.port} (store {uri}); Ctrl-C to stop")
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    sweeps = parse_str_list(args.sweep)
    if not sweeps:
        raise ConfigError("--sweep: give at least one sweep name")
    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    check_tracking_uri(uri)
    return _build_report(sweeps, uri, args.experiment, args.out, args.min_dim)


def _build_report(sweeps: list[str], uri: str, experiment: str, out: str | None, min_dim: int | None) -> int:
    try:
        import analysis
    except ImportError as exc:
        raise ConfigError(f"the analysis package is not available: {exc}") from None
    out_dir = Path(out or Path("reports") / "+".join(sweeps)).resolve()
    try:
        report: Any = analysis.build_report(
            sweeps, tracking_uri=uri, out_dir=out_dir, experiment=experiment, min_dim=min_dim
        )
    except analysis.ReportError as exc:
        print(f"relgrad report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(report)
    html = getattr(report, "html", out_dir / "report.html")
    print(f"report: {html}")
    return EXIT_OK


COMMANDS = {
    "scaling": cmd_scaling,
    "tune": cmd_tune,
    "train": cmd_train,
    "ui": cmd_ui,
    "report": cmd_report,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"relgrad: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("relgrad: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
