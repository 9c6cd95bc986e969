"""``python -m benchmarks.quality``: run the experiments, write the JSON and print the markdown summary."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import torch

from benchmarks._common import machine_info, write_json
from benchmarks.quality.budget import budget_as_dicts, budget_experiment, budget_markdown
from benchmarks.quality.digits import digits_experiment
from benchmarks.quality.peers import peers_experiment
from benchmarks.quality.plan import Plan, quick_plan
from benchmarks.quality.results import Experiment
from benchmarks.quality.summary import experiment_markdown
from benchmarks.quality.table import table_experiment
from benchmarks.quality.teacher import teacher_experiment

EXPERIMENTS = ("digits", "table", "teacher", "peers", "budget")
DEFAULT_EXPERIMENTS = ("digits", "table", "teacher")  # budget measures time: run it alone on a quiet machine
MAX_WORKERS = 2


def _names(text: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in names if s not in EXPERIMENTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown experiment(s) {unknown or text!r}; choose from {', '.join(EXPERIMENTS)}"
        )
    return names


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from err
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


def _count(limit: int | None = None):  # type: ignore[no-untyped-def]
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from err
        if value < 1 or (limit is not None and value > limit):
            bound = f" no larger than {limit}" if limit else ""
            raise argparse.ArgumentTypeError(f"expected a positive integer{bound}, got {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke version of every experiment")
    parser.add_argument(
        "--experiments",
        "--sections",
        type=_names,
        default=DEFAULT_EXPERIMENTS,
        help=f"comma-separated subset of {','.join(EXPERIMENTS)} (default {','.join(DEFAULT_EXPERIMENTS)})",
    )
    parser.add_argument(
        "--seeds", type=_count(), default=None, help="paired seeds 0..N-1 (default 5, --quick 2)"
    )
    parser.add_argument("--alphas", type=_floats, default=None, help="digits α values (default 0.3,0.01)")
    parser.add_argument(
        "--budgets", type=_floats, default=None, help="training seconds of the budget experiment"
    )
    parser.add_argument("--threads", type=_count(), default=1, help="torch threads per run (default 1)")
    parser.add_argument("--workers", type=_count(MAX_WORKERS), default=1, help="parallel processes (≤ 2)")
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/quality-cpu.json"), help="JSON path"
    )
    parser.add_argument("--log", type=Path, default=None, help="also append progress lines to this file")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    plan = quick_plan(args.threads) if args.quick else Plan(threads=args.threads)
    if args.seeds:
        plan = replace(plan, seeds=tuple(range(args.seeds)))
    if args.alphas:
        plan = replace(plan, alphas=args.alphas)
    if args.budgets:
        plan = replace(plan, budgets_s=args.budgets)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)
        if args.log is not None:
            with open(args.log, "a", encoding="utf-8") as handle:
                handle.write(message + "\n")

    payload: dict[str, object] = {
        "machine": machine_info(torch.device("cpu")) | {"workers": args.workers, "quick": args.quick},
        "plan": asdict(plan),
        "experiments": [],
    }
    sections: list[str] = []
    experiments: list[Experiment] = []
    for name in args.experiments:
        if name == "budget":
            runs = budget_experiment(plan, log)
            payload["budget"] = budget_as_dicts(runs, plan.budgets_s)
            sections.append(budget_markdown(runs, plan.budgets_s))
        else:
            batch = {
                "digits": lambda: [digits_experiment(plan, a, args.workers, log) for a in plan.alphas],
                "table": lambda: [table_experiment(plan, a, args.workers, log) for a in plan.table_alphas],
                "teacher": lambda: [
                    teacher_experiment(plan, d, args.workers, log) for d in plan.teacher_dims
                ],
                "peers": lambda: peers_experiment(plan, args.workers, log),
            }[name]()
            experiments += batch
            sections += [experiment_markdown(e) for e in batch]
        payload["experiments"] = [e.as_dict() for e in experiments]
        payload["markdown"] = "\n\n".join(sections)
        write_json(args.out, payload)  # after every experiment: a long run leaves partial results
    print(payload["markdown"])
    print(f"\nwritten to {args.out}")
    return payload


if __name__ == "__main__":
    main()
