"""Seconds per training step of every gradient method, interleaved, with the ratios as the headline.

    python -m benchmarks.step_cost                       # CPU defaults: D 512…4096, B 64 and 256, depth 2
    python -m benchmarks.step_cost --quick               # a one-minute smoke run
    python -m benchmarks.step_cost --device cuda --dims 1024,2048,4096,8192,16384 --batch-sizes 100

A step is the method's gradient (:func:`relgrad_core.backward`) plus an Adam step; the gradient alone is
timed inside the same step. Within each (B, D) every repeat runs all methods once, in an order rotated per
repeat, so slow drifts of a shared machine hit all methods alike; medians, minima and IQRs over repeats,
ratios of medians. Each step is timed by :meth:`relgrad_core.timing.StepRunner.timed` (the timing code of
:func:`relgrad_core.time_step`; CUDA events on a GPU). The methods are the registry's
(:func:`relgrad_core.method_names`), so the peers (zuko's and nflows' flows, the ``peers`` extra) are timed
beside relgrad's when installed; the expected matrix-FLOP ratio relative/MLP (1.2 at depth 2, → 4/3 for
deep flows) comes from its FLOP model (:func:`relgrad_core.flop_ratio`).

    # against the peers, as BENCHMARKS.md quotes it
    python -m benchmarks.step_cost --dims 256,512,1024,2048,4096 --batch-sizes 64,256 --slope-range 256:4096 \
        --methods relative,ordinary,lu,mlp,zuko_lu,nflows_lu,zuko_maf
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import statistics
from collections.abc import Callable

import torch

from benchmarks._common import machine_info, markdown_table, write_json
from relgrad_core import flop_ratio, make_flow, method_names, resolve_device, unavailable_methods
from relgrad_core.machine import load_avg_1m
from relgrad_core.timing import StepRunner, quartiles

REFERENCE = "relative"


def _parse_ints(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of positive integers, got {text!r}"
        )
    return values


def _parse_methods(text: str) -> list[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    known = method_names()
    unknown = sorted(set(methods) - set(known))
    missing = unavailable_methods()
    for name in unknown:
        if name in missing:
            raise argparse.ArgumentTypeError(f"method {name!r} is not installed: {missing[name]}")
    if unknown or not methods:
        raise argparse.ArgumentTypeError(f"unknown method(s) {unknown}; choose from {', '.join(known)}")
    return methods


def measure(
    dims: list[int],
    batch_sizes: list[int],
    methods: list[str],
    *,
    depth: int,
    repeats: int,
    warmup: int,
    device: torch.device,
    dtype: torch.dtype,
    max_step_s: float,
    jacobian_max_dim: int,
    log: Callable[[str], None] = print,
) -> list[dict[str, object]]:
    """One interleaved run over the grid; a row per (B, D, method) with medians, IQRs and raw times."""
    rows: list[dict[str, object]] = []
    for batch in batch_sizes:
        over_budget: set[str] = set()
        for dim in dims:
            active = [
                m
                for m in methods
                if m not in over_budget and not (m == "jacobian" and dim > jacobian_max_dim)
            ]
            x = torch.randn(batch, dim, device=device, dtype=dtype, generator=None)
            # one runner per method: checked once, then stepped without checks (trains at a tiny lr)
            runners = {
                m: StepRunner(make_flow(m, dim, depth, device=device, dtype=dtype, seed=0), x, m, lr=1e-5)
                for m in active
            }
            times: dict[str, list[tuple[float, float]]] = {m: [] for m in active}
            for m in active:  # warm-up, and the over-budget check on the last warm-up step
                for _ in range(warmup):
                    first = runners[m].timed()
                if warmup and first[1] > max_step_s:
                    times[m].append(first)
            for r in range(repeats):
                for k in range(len(active)):
                    m = active[(k + r) % len(active)]
                    if times[m] and times[m][0][1] > max_step_s:
                        continue  # one measured step is all a method this slow gets
                    times[m].append(runners[m].timed())
            load = load_avg_1m()
            for m in active:
                grads = [g for g, _ in times[m]]
                steps = [s for _, s in times[m]]
                q1, q3 = quartiles(steps)
                rows.append(
                    {
                        "batch_size": batch,
                        "dim": dim,
                        "method": m,
                        "step_median_s": statistics.median(steps),
                        "step_min_s": min(steps),
                        "step_iqr_s": q3 - q1,
                        "grad_median_s": statistics.median(grads),
                        "repeats": len(steps),
                        "load_avg_1m": load,
                        "step_times_s": steps,
                        "grad_times_s": grads,
                    }
                )
                if statistics.median(steps) > max_step_s:
                    over_budget.add(m)
            summary = ", ".join(
                f"{r['method']} {1e3 * r['step_median_s']:.1f}ms" for r in rows[-len(active) :]
            )
            log(f"B={batch} D={dim}: {summary}")
            del runners
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


def ratios(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Per (B, D): relative/mlp (step and gradient) and each other method / relative (step)."""
    table: dict[tuple[int, int], dict[str, dict[str, object]]] = {}
    for row in rows:
        table.setdefault((row["batch_size"], row["dim"]), {})[row["method"]] = row
    out = []
    for (batch, dim), by_method in sorted(table.items()):
        rel = by_method.get(REFERENCE)
        if rel is None:
            continue
        entry: dict[str, object] = {"batch_size": batch, "dim": dim}
        if "mlp" in by_method:
            entry["relative/mlp step"] = rel["step_median_s"] / by_method["mlp"]["step_median_s"]
            entry["relative/mlp grad"] = rel["grad_median_s"] / by_method["mlp"]["grad_median_s"]
        for m in method_names():
            if m not in ("mlp", REFERENCE) and m in by_method:
                entry[f"{m}/{REFERENCE}"] = by_method[m]["step_median_s"] / rel["step_median_s"]
        out.append(entry)
    return out


def slopes(rows: list[dict[str, object]], min_dim: int, max_dim: int) -> list[dict[str, object]]:
    """Least-squares slope of log(step seconds) on log(D) per (B, method) over ``min_dim ≤ D ≤ max_dim``."""
    groups: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for row in rows:
        if min_dim <= row["dim"] <= max_dim:
            groups.setdefault((row["batch_size"], row["method"]), []).append(
                (math.log(row["dim"]), math.log(row["step_median_s"]))
            )
    out = []
    for (batch, method), points in sorted(groups.items()):
        if len({p[0] for p in points}) < 3:
            continue
        mx = statistics.fmean(p[0] for p in points)
        my = statistics.fmean(p[1] for p in points)
        sxx = sum((p[0] - mx) ** 2 for p in points)
        slope = sum((p[0] - mx) * (p[1] - my) for p in points) / sxx
        dims = sorted(round(math.exp(p[0])) for p in points)
        out.append(
            {
                "batch_size": batch,
                "method": method,
                "slope": slope,
                "dims": f"{dims[0]}…{dims[-1]}",
                "points": len(points),
            }
        )
    return out


def profile_relative(dim: int, batch: int, depth: int, device: torch.device, dtype: torch.dtype) -> str:
    """Where a relative step's time goes: torch.profiler's top operators over a few steps."""
    from torch.profiler import ProfilerActivity, profile

    flow = make_flow(REFERENCE, dim, depth, device=device, dtype=dtype, seed=0)
    runner = StepRunner(flow, torch.randn(batch, dim, device=device, dtype=dtype), REFERENCE, lr=1e-5)
    for _ in range(3):
        runner.timed()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(5):
            runner.timed()
    key = "cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=12)


def render(result: dict) -> str:
    """The markdown that BENCHMARKS.md quotes."""
    info = result["machine"]
    head = (
        f"Machine: {info['cpu_model']} ({info['cpu_count']} cores, {info['torch_threads']} torch threads)"
        + (f", GPU {info['gpu']}" if "gpu" in info else "")
        + f"; torch {info['torch_version']}; {info['date']}; commit {info['git_commit']}.\n"
        + f"Command: `{info['command']}`\n"
    )
    step_rows = [
        [
            r["batch_size"],
            r["dim"],
            r["method"],
            1e3 * r["step_median_s"],
            1e3 * r["step_min_s"],
            1e3 * r["step_iqr_s"],
            1e3 * r["grad_median_s"],
            r["repeats"],
        ]
        for r in result["rows"]
    ]
    steps = markdown_table(
        ["B", "D", "method", "step ms (median)", "min ms", "IQR ms", "grad ms", "n"], step_rows
    )
    ratio_keys = sorted({k for r in result["ratios"] for k in r} - {"batch_size", "dim"})
    ratio_rows = [[r["batch_size"], r["dim"], *[r.get(k, "–") for k in ratio_keys]] for r in result["ratios"]]
    ratio_table = markdown_table(["B", "D", *ratio_keys], ratio_rows)
    slope_rows = [[r["batch_size"], r["method"], r["slope"], r["dims"]] for r in result["slopes"]]
    slope_table = markdown_table(["B", "method", "log-log slope", "D range"], slope_rows)
    depth = result["settings"]["depth"]
    floor = f"Matrix-FLOP model: relative/mlp = {flop_ratio(REFERENCE, depth):.3g} at depth {depth}.\n"
    return (
        f"{head}\n### Ratios\n{floor}\n{ratio_table}\n\n### Slopes\n{slope_table}\n\n"
        f"### Step times\n{steps}\n"
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.step_cost", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--dims", type=_parse_ints, default=[512, 1024, 2048, 4096])
    parser.add_argument("--batch-sizes", type=_parse_ints, default=[64, 256])
    parser.add_argument("--methods", type=_parse_methods, default=list(method_names()))
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (pinned)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument(
        "--max-step-s",
        type=float,
        default=30.0,
        help="a method slower than this per step gets one timed step, and no larger D",
    )
    parser.add_argument("--jacobian-max-dim", type=int, default=1024)
    parser.add_argument("--slope-range", default="512:4096", help="MIN:MAX dimensions of the slope fit")
    parser.add_argument(
        "--profile", action="store_true", help="print torch.profiler's view of a relative step"
    )
    parser.add_argument("--quick", action="store_true", help="small grid for a smoke run")
    parser.add_argument(
        "--out", default=None, help="JSON path (default benchmarks/results/step_cost-<date>.json)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.dims, args.batch_sizes, args.repeats, args.jacobian_max_dim = [64, 128, 256], [32], 3, 128
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtype = getattr(torch, args.dtype)
    low, high = (int(v) for v in args.slope_range.split(":"))
    rows = measure(
        args.dims,
        args.batch_sizes,
        args.methods,
        depth=args.depth,
        repeats=args.repeats,
        warmup=args.warmup,
        device=device,
        dtype=dtype,
        max_step_s=args.max_step_s,
        jacobian_max_dim=args.jacobian_max_dim,
    )
    result = {
        "machine": machine_info(device),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "rows": rows,
        "ratios": ratios(rows),
        "slopes": slopes(rows, low, high),
    }
    if args.profile:
        result["profile"] = profile_relative(max(args.dims), args.batch_sizes[0], args.depth, device, dtype)
        print(result["profile"])
    text = render(result)
    print(text)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M")
    out = args.out or f"benchmarks/results/step_cost-{device.type}-{stamp}.json"
    write_json(out, result | {"markdown": text})
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
