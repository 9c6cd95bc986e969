"""Bad inputs tried against the ``relgrad`` command (and, through a hook, the library), as a markdown table.

    python -m benchmarks.bad_inputs            # prints the table (input → exit code → message)
    python -m benchmarks.bad_inputs --json out.json

Every CLI case runs ``study.cli.main([...])`` in this process, in a fresh temporary folder that holds its
MLflow store and Tune results, so the table also checks what a bad input must not do: no traceback, one
line on stderr, exit code 2, no MLflow run and no Ray started. The same cases drive
``tests/study/test_cli_bad_inputs.py``. Library entry points are appended to :data:`LIBRARY_CASES` as
``(label, call)`` pairs; :func:`run_library_case` records the exception each call raises.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from benchmarks.bad_library_inputs import ACCEPTED, library_cases

DEFAULT_PRESET = "smoke"


@dataclass(frozen=True)
class Case:
    """One bad command line: ``argv`` with ``{tmp}`` for the case's folder, and a fragment of the answer."""

    argv: tuple[str, ...]
    expect: str
    setup: Callable[[Path], None] | None = None  # writes the files the case reads, under its folder
    needs_no_cuda: bool = False  # only meaningful on a machine without CUDA

    @property
    def label(self) -> str:
        return "relgrad " + " ".join(
            _quote(a).replace("{tmp}/", "").replace("{tmp}", "<tmp>") for a in self.argv
        )


@dataclass(frozen=True)
class Row:
    """One line of the table: what was tried, how it ended, what the user read."""

    input: str
    outcome: str  # "exit 2" for the CLI, the exception's type for the library
    message: str
    lines: int = 1
    traceback: bool = False
    runs: int = 0
    ray_started: bool = False


def _quote(arg: str) -> str:
    return arg if arg and all(c.isalnum() or c in "-_.,:/{}=+[]" for c in arg) else repr(arg)


def _write(name: str, text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_text(text)


def _array(name: str, array: np.ndarray) -> Callable[[Path], None]:
    return lambda folder: np.save(folder / name, array)


def _npz(name: str, **arrays: np.ndarray) -> Callable[[Path], None]:
    return lambda folder: np.savez(folder / name, **arrays)


_GOOD = np.random.default_rng(0).normal(size=(40, 3))
_NAN = _GOOD.copy()
_NAN[3, 1] = np.nan
_TENTHS = np.column_stack([_GOOD, np.full(40, 0.1)])  # 0.1 is not exact: its computed sd is not 0
_TWINS = np.column_stack([_GOOD, _GOOD[:, 1]])
_SUM = np.column_stack([_GOOD, _GOOD[:, 0] + 2.0 * _GOOD[:, 2]])
_WIDE = np.random.default_rng(1).normal(size=(10, 8))  # 6 training rows for 8 columns


def _csv(name: str, array: np.ndarray, first: str = "") -> Callable[[Path], None]:
    rows = "".join(",".join(repr(float(v)) for v in row) + "\n" for row in array)
    return _write(name, first + rows)


CLI_CASES: list[Case] = [
    # lists, ranges and numbers
    Case(("scaling", "--dims", "nan"), "--dims: 'nan' is not a finite number"),
    Case(("scaling", "--dims", "inf"), "--dims: 'inf' is not a finite number"),
    Case(("scaling", "--dims", "0,8"), "scaling.dims[0]: must be >= 1, got 0"),
    Case(("scaling", "--dims", "1:1000000000"), "gives 1000000000 values; at most 1000 per list"),
    Case(("scaling", "--dims", "64:32:x2"), "ends before it starts"),
    Case(("scaling", "--dims", "1000000"), "needs about"),
    Case(("scaling", "--lrs", "1e-4:inf:x10"), "--lrs: 'inf' is not a finite number"),
    Case(("scaling", "--lrs=-1e-3"), "scaling.lrs[0]: must be > 0"),
    Case(("scaling", "--epochs", "x"), "scaling.train.epochs: must be an integer, got 'x'"),
    Case(("scaling", "--epochs", "true"), "scaling.train.epochs: must be an integer, got True"),
    Case(("scaling", "--methods", "relative,newton"), "unknown method 'newton'"),
    Case(("scaling", "--dataset", "imagenet"), "unknown dataset 'imagenet'"),
    Case(("scaling", "--dataset", "digits"), "scaling sweeps generate data at every D"),
    Case(("scaling", "--optimizer", "lbfgs"), "unknown optimizer 'lbfgs'"),
    Case(("scaling", "--cpus-per-trial", "0"), "scaling.resources.cpus_per_trial: must be > 0"),
    Case(("scaling", "--set", "train.epochs=0"), "scaling.train.epochs: must be >= 1, got 0"),
    Case(("scaling", "--set", "train.epochz=3"), "scaling.train: unknown keys ['epochz']"),
    Case(("scaling", "--set", "epochs"), "expected section.field=value"),
    Case(("scaling", "--frobnicate"), "unrecognized arguments"),
    # names and devices
    Case(("scaling", "--name", "o'b"), 'sweep name "o\'b": use 1-128 letters, digits'),
    Case(("scaling", "--name", "../escape"), "sweep name '../escape': use 1-128 letters, digits"),
    Case(("train", "--name", "a/b"), "sweep name 'a/b': use 1-128 letters, digits"),
    Case(("scaling", "--device", "cuda"), "CUDA is not available on this machine", needs_no_cuda=True),
    Case(("scaling", "--device", "gpu"), "unknown device 'gpu'"),
    Case(("scaling", "--gpus-per-trial", "1"), "but this machine has no GPU", needs_no_cuda=True),
    Case(("tune", "--cpus-per-trial", "4", "--num-cpus", "2"), "exceeds the 2 CPUs of embedded Ray"),
    Case(("tune", "--device", "cuda"), "CUDA is not available on this machine", needs_no_cuda=True),
    Case(("train", "--device", "cuda"), "CUDA is not available on this machine", needs_no_cuda=True),
    Case(("train", "--dim", "1000000"), "needs about"),
    Case(("tune", "--samples", "0"), "tune.space.samples: must be >= 1"),
    Case(("tune", "--method", "newton"), "unknown method 'newton'"),
    Case(("train", "--dataset", "imagenet"), "unknown dataset 'imagenet'"),
    Case(("train", "--dataset", "power", "--set", "data.root={tmp}"), "run.data.dataset 'power': power"),
    Case(("tune", "--dataset", "power", "--set", "data.root={tmp}"), "tune.data.dataset 'power': power"),
    # presets
    Case(("scaling", "--preset", "nope"), "unknown preset 'nope'"),
    Case(
        ("scaling", "--preset", "{tmp}/broken.yaml"),
        "invalid YAML",
        _write("broken.yaml", "scaling: [1, 2\n"),
    ),
    Case(
        ("scaling", "--preset", "{tmp}/tag.yaml"),
        "could not determine a constructor",
        _write("tag.yaml", "scaling: !!python/object/apply:os.system [echo hi]\n"),
    ),
    Case(
        ("scaling", "--preset", "{tmp}/null.yaml"),
        "section 'scaling' must be a mapping, got null",
        _write("null.yaml", "scaling:\ntune: {}\n"),
    ),
    Case(
        ("scaling", "--preset", "{tmp}/string.yaml"),
        "scaling.methods: must be a list",
        _write("string.yaml", "scaling: {methods: relative}\n"),
    ),
    Case(
        ("scaling", "--preset", "{tmp}/types.yaml"),
        "scaling.train.epochs: must be an integer, got 'five'",
        _write("types.yaml", "scaling: {train: {epochs: five}}\n"),
    ),
    # stores
    Case(("scaling", "--tracking-uri", "sqlite:////proc/x.db"), "/proc/x.db: cannot create files"),
    Case(("scaling", "--tracking-uri", "postgresql://u@localhost/db"), "database driver is not installed"),
    Case(("scaling", "--tracking-uri", "sqlite:///mlflow.db"), "must be absolute"),
    # data files
    Case(("train", "--data-file", "{tmp}/absent.npy"), "no such file"),
    Case(("train", "--data-file", "{tmp}/nan.npy"), "NaN", _array("nan.npy", _NAN)),
    Case(("train", "--data-file", "{tmp}/flat.npy"), "2-D", _array("flat.npy", _GOOD[:, 0])),
    Case(("train", "--data-file", "{tmp}/one.npy"), "row", _array("one.npy", _GOOD[:1])),
    Case(("train", "--data-file", "{tmp}/empty.csv"), "empty", _write("empty.csv", "")),
    Case(("scaling", "--data-file", "{tmp}/words.csv"), "words.csv", _write("words.csv", "a,b\n1,x\n2,y\n")),
    Case(("tune", "--data-file", "{tmp}/bad.npz"), "bad.npz", _npz("bad.npz", train=_GOOD, val=_GOOD[:, :2])),
    Case(("train", "--data-file", "{tmp}/x.txt"), "unknown extension", _write("x.txt", "1,2\n")),
    Case(("train", "--data-file", "{tmp}/tenths.csv"), "constant", _csv("tenths.csv", _TENTHS)),
    Case(("train", "--data-file", "{tmp}/twins.npy"), "identical", _array("twins.npy", _TWINS)),
    Case(("scaling", "--data-file", "{tmp}/sum.csv"), "linear combination", _csv("sum.csv", _SUM)),
    Case(("train", "--data-file", "{tmp}/wide.npy"), "training rows for", _array("wide.npy", _WIDE)),
    Case(("tune", "--data-file", "{tmp}/na.csv"), "missing value", _csv("na.csv", _GOOD, "1.5,NA,2\n")),
    Case(("train", "--data-file", "{tmp}/inf.csv"), "not a finite", _csv("inf.csv", _GOOD, "1,inf,2\n")),
    # resuming with a changed grid or data
    Case(("scaling", "--resume", "--dims", "8,16"), "--resume runs sweep 'bad' with the config"),
    Case(("scaling", "--resume", "--set", "train.epochs=2"), "--set would change it"),
    Case(("tune", "--resume", "--data-file", "{tmp}/x.npy"), "--data-file would change it"),
    # reports
    Case(("report", "--sweep", "bad", "--predict-dims", "0"), "--predict-dims: each D must be in 1..1000000"),
    Case(("scaling", "--report", "--predict-dims", "x"), "--predict-dims: 'x' is not"),
    Case(("report", "--sweep", "bad"), "no MLflow store"),
]

#: ``(label, call)``: a library entry point given bad input; the call must raise a clear exception.
LIBRARY_CASES: list[tuple[str, Callable[[], object]]] = library_cases()


def _store_args(folder: Path) -> list[str]:
    uri = f"sqlite:///{(folder / 'runs' / 'mlflow.db').as_posix()}"
    return ["--tracking-uri", uri, "--storage-path", str(folder / "ray_results"), "--name", "bad"]


def _runs(folder: Path) -> int:
    if not (folder / "runs" / "mlflow.db").exists():
        return 0
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{(folder / 'runs' / 'mlflow.db').as_posix()}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    return len(client.search_runs(experiments)) if experiments else 0


def run_case(case: Case, folder: Path) -> Row:
    """Run one case with ``main`` in ``folder``; the row says what the user saw and what was left behind."""
    import ray

    from study.cli import main

    if case.setup is not None:
        case.setup(folder)
    command, *rest = (a.replace("{tmp}", str(folder)) for a in case.argv)
    # a resume takes the sweep's saved config: no preset (it would be refused as a change)
    sweep = command in ("scaling", "tune") and "--resume" not in rest
    preset = ["--preset", DEFAULT_PRESET] if sweep else []
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([command, *_store_args(folder), *preset, *rest])
    text = err.getvalue().strip()
    return Row(
        input=case.label,
        outcome=f"exit {code}",
        message=text.removeprefix("relgrad: error: ").replace(f"{folder}/", "").replace(str(folder), "<tmp>"),
        lines=len(text.splitlines()),
        traceback="Traceback" in text,
        runs=_runs(folder),
        ray_started=ray.is_initialized(),
    )


def run_library_case(label: str, call: Callable[[], object]) -> Row:
    try:
        result = call()
    except Exception as exc:  # the point: which exception, and what it says
        lines = str(exc).strip().splitlines()
        return Row(label, type(exc).__name__, lines[0] if lines else "", lines=len(lines))
    return Row(label, "accepted", str(result) if result is not None else "(no error)", lines=0)


def applicable(case: Case) -> bool:
    if case.needs_no_cuda:
        import torch

        return not torch.cuda.is_available()
    return True


def render(rows: list[Row], what: str = "input") -> str:
    """``| input | outcome | message |`` as GitHub markdown (pipes escaped)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    out = [f"| {what} | outcome | message |", "|---|---|---|"]
    out += [f"| `{cell(r.input)}` | {cell(r.outcome)} | {cell(r.message)} |" for r in rows]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bad_inputs", description=__doc__)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    rows = []
    for case in filter(applicable, CLI_CASES):
        with tempfile.TemporaryDirectory(prefix="relgrad-bad-") as tmp:
            rows.append(run_case(case, Path(tmp)))
    library = [run_library_case(label, call) for label, call in LIBRARY_CASES]
    print(render(rows, "command"))
    if library:
        print()
        print(render(library, "call"))
    clean = [r for r in rows if r.outcome == "exit 2" and r.lines == 1 and not r.traceback and not r.runs]
    refused = [r for r in library if (r.outcome == "accepted") == (r.input in ACCEPTED)]
    print(
        f"\n{len(clean)}/{len(rows)} CLI cases: exit 2, one line, no traceback, no MLflow run; "
        f"{len(refused)}/{len(library)} library cases as expected (refused, or cast where stated)",
        file=sys.stderr,
    )
    if args.json:
        payload = {"cli": [asdict(r) for r in rows], "library": [asdict(r) for r in library]}
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")
    return 0 if len(clean) == len(rows) and len(refused) == len(library) else 1


if __name__ == "__main__":
    raise SystemExit(main())
