"""A fake tracking store in the schema the `study` package writes, built with plain MLflow calls.

Timings follow known power laws (with 10% multiplicative noise) so that the tests can check the
fitted exponents, speedups and crossovers against the truth.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

EXPERIMENT = "relgrad"
SCALING = "fake-scaling"
HPO = "fake-hpo"
DIMS = (64, 128, 256, 512, 1024)
SEEDS = (0, 1)
DEPTH = 2
BATCH = 100
DEVICE = "cpu: Fake Xeon 9000"


def true_seconds(method: str, dim: int) -> float:
    """Noise-free seconds per step: a fixed overhead plus D² and D³ terms, per method."""
    d = float(dim)
    law = {
        "relative": 2e-6 + 5e-9 * d**2,
        "mlp": 1e-6 + 3e-9 * d**2,
        "lu": 1e-6 + 8e-9 * d**2,
        # cheap at small D, cubic at large D: relative overtakes it inside the range
        "ordinary": 5e-7 + 1e-9 * d**2 + 4e-11 * d**3,
        "autodiff": 1e-6 + 2e-9 * d**3,
        "jacobian": 1e-6 + 1.5e-9 * d**3,
    }
    # a user-registered method the schema does not know: a quadratic step 1.5× the relative one
    return law.get(method, 1.5 * law["relative"])


METHODS = ("relative", "ordinary", "autodiff", "jacobian", "lu", "mlp")
#: The parent's measured matrix-multiply peak (GFLOP/s) and the GEMM size it used.
PEAK_GFLOPS = 500.0


def counted_flops(method: str, dim: int, batch: int = BATCH) -> tuple[float, float]:
    """(FLOPs, cubic FLOPs) of one depth-2 step, as relgrad_core.counting counts the built-ins."""
    b, d = float(batch), float(dim)
    cubic = {"ordinary": 4 * d**3, "autodiff": 16 / 3 * d**3, "jacobian": (10 + 8 / 3) * b * d**3}
    quadratic = {"relative": 12 * b * d * d + 8 * b * d, "lu": 22 * b * d * d, "jacobian": 22 * b * d * d}
    flops = quadratic.get(method, 10 * b * d * d if method in cubic or method == "mlp" else 18 * b * d * d)
    return flops + cubic.get(method, 0.0), cubic.get(method, 0.0)


@dataclass(frozen=True)
class FakeStore:
    """Where the fake store lives and what is in it."""

    tracking_uri: str
    root: Path
    scaling_parent: str
    hpo_parent: str | None
    methods: tuple[str, ...]
    scaling: str = SCALING
    hpo: str = HPO
    dims: tuple[int, ...] = DIMS
    seeds: tuple[int, ...] = SEEDS
    device: str = DEVICE


def _env_tags(trial_id: str) -> dict[str, str]:
    return {
        "device_name": DEVICE,
        "torch_version": "2.13.0",
        "cuda_version": "",
        "cpu_model": "Fake Xeon 9000",
        "host": "testhost",
        "node_id": "node-0",
        "git_commit": "abc1234",
        "trial_id": trial_id,
    }


def _log(
    client: MlflowClient,
    run_id: str,
    params: dict[str, object],
    metrics: dict[str, float],
    tags: dict[str, str] | None = None,
    history: list[tuple[int, dict[str, float]]] | None = None,
) -> None:
    now = int(time.time() * 1000)
    batch = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
    for step, values in history or []:
        batch.extend(Metric(k, float(v), now + step, step) for k, v in values.items())
    client.log_batch(
        run_id,
        metrics=batch,
        params=[Param(k, str(v)) for k, v in params.items()],
        tags=[RunTag(k, v) for k, v in (tags or {}).items()],
    )
    client.set_terminated(run_id)


def _child(
    client: MlflowClient, exp: str, parent: str, sweep: str, status: str, reason: str, trial: str
) -> str:
    tags = {
        "mlflow.parentRunId": parent,
        "sweep": sweep,
        "role": "trial",
        "status": status,
        "status_reason": reason,
        **_env_tags(trial),
    }
    return client.create_run(exp, tags=tags, run_name=trial).info.run_id


def build_store(
    root: Path,
    *,
    hpo: bool = True,
    methods: tuple[str, ...] = METHODS,
    omit_metric_in_one_trial: str | None = None,
    empty_sweep: str | None = None,
) -> FakeStore:
    """Write the fake store under ``root`` and return its tracking URI."""
    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{(root / 'mlflow.db').resolve()}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment(EXPERIMENT, artifact_location=(root / "artifacts").as_uri())
    rng = np.random.default_rng(1234)

    parent = client.create_run(
        exp, tags={"sweep": SCALING, "role": "parent", "kind": "scaling"}, run_name=SCALING
    ).info.run_id
    _log(
        client,
        parent,
        {"dims": ",".join(map(str, DIMS)), "methods": ",".join(methods)},
        {"matmul_peak_gflops": PEAK_GFLOPS},
        tags={"matmul_peak_size": "2048"},
    )
    for method in methods:
        for dim in DIMS:
            for seed in SEEDS:
                trial = f"{method}-d{dim}-s{seed}"
                config = {
                    "method": method,
                    "dim": dim,
                    "depth": DEPTH,
                    "batch_size": BATCH,
                    "lr": 1e-3,
                    "alpha": 0.3,
                    "dataset": "teacher",
                    "device": "cpu",
                    "dtype": "float32",
                    "seed": seed,
                }
                if method == "autodiff" and dim == DIMS[-1]:
                    run = _child(
                        client,
                        exp,
                        parent,
                        SCALING,
                        "skipped_over_budget",
                        "estimated 812 s > budget 60 s",
                        trial,
                    )
                    _log(client, run, config, {})
                    continue
                if method == "jacobian" and dim == DIMS[-1] and seed == 1:
                    run = _child(client, exp, parent, SCALING, "diverged", "non-finite loss at step 3", trial)
                    _log(client, run, config, {"sec_per_iter": true_seconds(method, dim)})
                    continue
                sec = true_seconds(method, dim) * float(np.exp(rng.normal(0.0, 0.1)))
                true_ll = -1.2 * dim
                final_gap = 0.05 * dim / 64 if method != "mlp" else 0.0
                history = []
                for step in range(0, 60, 10):
                    gap = final_gap + 5.0 * np.exp(-step / 15.0)
                    history.append(
                        (
                            step,
                            {
                                "val_ll": true_ll - gap,
                                "train_ll": true_ll - gap + 0.5,
                                "train_time_s": step * sec * 1.1,
                            },
                        )
                    )
                flops, cubic = counted_flops(method, dim)
                metrics = {
                    "flops_per_step": flops,
                    "flops_cubic_per_step": cubic,
                    "bytes_per_step": 4.0 * (8 * BATCH * dim + 12 * dim * dim),
                    "sec_per_iter": sec,
                    "sec_per_iter_min": 0.9 * sec,
                    "sec_per_iter_iqr": 0.05 * sec,
                    "flop_ratio": 1.2 if method == "relative" else 1.0,
                    "load_avg_1m": 0.5,
                    "peak_mem_mb": 2.0 + 1.2e-4 * dim**2 * (3 if method == "autodiff" else 1),
                    "test_ll": history[-1][1]["val_ll"] - 0.01,
                    "true_test_ll": true_ll,
                }
                if omit_metric_in_one_trial and method == "relative" and dim == DIMS[0]:
                    metrics.pop(omit_metric_in_one_trial)
                run = _child(client, exp, parent, SCALING, "ok", "", trial)
                _log(client, run, config, metrics, history=history)
    # one failed trial, without any metric
    run = _child(client, exp, parent, SCALING, "failed", "CUDA out of memory", "lu-d2048-s0")
    _log(client, run, {"method": "lu", "dim": 2048, "depth": DEPTH, "batch_size": BATCH}, {})

    hpo_parent = None
    if hpo:
        hpo_parent = client.create_run(
            exp, tags={"sweep": HPO, "role": "parent", "kind": "hpo"}, run_name=HPO
        ).info.run_id
        _log(client, hpo_parent, {"n_trials": 8}, {})
        for i, (method, lr, depth) in enumerate(
            [(m, lr, d) for m in ("relative", "ordinary") for lr in (1e-4, 1e-3) for d in (1, 2)]
        ):
            run = _child(client, exp, hpo_parent, HPO, "ok", "", f"hpo-{i}")
            val = -80.0 - 5 * abs(np.log10(lr) + 3) - depth + (0.5 if method == "relative" else 0)
            cfg = {
                "method": method,
                "lr": lr,
                "depth": depth,
                "alpha": 0.3,
                "batch_size": 100,
                "dim": 64,
                "dataset": "teacher",
                "seed": 0,
            }
            _log(client, run, cfg, {"val_ll": val}, history=[(0, {"val_ll": val - 3}), (10, {"val_ll": val})])
        best = client.create_run(
            exp,
            tags={"mlflow.parentRunId": hpo_parent, "sweep": HPO, "role": "best"},
            run_name="best",
        ).info.run_id
        _log(client, best, {"method": "relative", "lr": 1e-3, "depth": 1}, {"test_ll": -80.7})

    if empty_sweep:
        empty = client.create_run(
            exp, tags={"sweep": empty_sweep, "role": "parent", "kind": "scaling"}
        ).info.run_id
        client.set_terminated(empty)
    return FakeStore(uri, root, parent, hpo_parent, tuple(methods))


@pytest.fixture(scope="session")
def fake_store(tmp_path_factory: pytest.TempPathFactory) -> FakeStore:
    """The full fake store, built once per session (tests that log into it use their own)."""
    return build_store(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="session")
def store_builder() -> Callable[..., FakeStore]:
    """:func:`build_store` itself, for tests that need a variant of the store."""
    return build_store
