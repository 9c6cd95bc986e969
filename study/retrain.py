"""An HPO sweep's retrains: the best configuration, and ``relgrad train``'s default beside it.

Both train from scratch on the trials' own schedule and data (no ASHA), as ``role=best`` and
``role=default`` child runs of the sweep, and are tested: the default's test LL is what the search has to
beat for it to be worth running.
"""

from __future__ import annotations

from typing import Any

import ray

from analysis.schema import ROLE_BEST, ROLE_DEFAULT, TAG_STATUS, TAG_STOPPED_REASON
from study.config import HpoConfig, SingleRun
from study.trial import SweepContext, TrialOutcome, run_in_worker, run_name


def _retrain(
    point: dict[str, Any], ctx: SweepContext, cfg: HpoConfig, role: str, params: dict[str, str]
) -> TrialOutcome:
    """Train ``point`` from scratch on the trials' schedule (no ASHA) as a ``role`` run, and test it."""
    retrain_ctx = SweepContext(
        tracking=ctx.tracking,
        data=ctx.data,
        train=ctx.train,
        role=role,
        extra_params={**ctx.extra_params, **params},
    )
    task = ray.remote(run_in_worker).options(
        num_cpus=cfg.resources.cpus_per_trial, num_gpus=cfg.resources.gpus_per_trial
    )
    return ray.get(task.remote(point, retrain_ctx, role))


def best(best: dict[str, Any], ctx: SweepContext, cfg: HpoConfig) -> dict[str, Any]:
    """Retrain the best config from scratch (full schedule, no ASHA) and evaluate it on test."""
    point = {k: v for k, v in best.items() if not k.startswith("_")}
    outcome = _retrain(point, ctx, cfg, ROLE_BEST, {"best_of_trial": best.get("_trial_id", "")})
    return {
        **best,
        TAG_STATUS: outcome.status,
        TAG_STOPPED_REASON: outcome.stopped_reason,
        "run_name": run_name(point, ROLE_BEST),
        **outcome.metrics,
    }


def default(dim: int, ctx: SweepContext, cfg: HpoConfig) -> dict[str, Any]:
    """What the search is worth: ``relgrad train``'s default configuration (lr, depth, α, batch size),
    trained on the same schedule and data as the retrained best, and tested."""
    defaults = SingleRun()
    point = {
        "method": cfg.space.method,
        "dim": dim,
        "seed": cfg.space.seed,
        **{k: getattr(defaults, k) for k in ("lr", "depth", "alpha", "batch_size")},
    }
    outcome = _retrain(point, ctx, cfg, ROLE_DEFAULT, {})
    return {
        **point,
        TAG_STATUS: outcome.status,
        TAG_STOPPED_REASON: outcome.stopped_reason,
        "run_name": run_name(point, ROLE_DEFAULT),
        **outcome.metrics,
    }
