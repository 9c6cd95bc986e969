"""What ``relgrad train`` and ``relgrad tune`` say at the end: a result read against its yardsticks.

A likelihood alone says little: each line puts the test LL next to the full-covariance Gaussian fitted
on the same training split (the yardstick every LL is read against), the true LL where the data have one
(teacher: the KL gap), and says why training stopped. LLs are in the data set's reported space
(``reported_*`` metrics), nats per sample, higher is better.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from analysis.schema import ROLE_DEFAULT, STATUS_OK, TAG_GAUSSIAN_ABSENT, TAG_STATUS, TAG_STOPPED_REASON

if TYPE_CHECKING:
    from study.trial import TrialOutcome


def _finite(metrics: Mapping[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _signed(value: float) -> str:
    return f"{value:+.2f}"


def ll_against_yardsticks(metrics: Mapping[str, Any]) -> str:
    """``test LL -72.71 (Gaussian -77.13: +4.42 nats; true -70.90: KL gap 1.81 nats)``, from trial metrics.

    The gain is taken on the reported LLs; it equals ``gain_over_gaussian`` (a constant offset apart).
    """
    test = _finite(metrics, "reported_test_ll")
    if test is None:
        test = _finite(metrics, "test_ll")
    if test is None:
        return "no test LL"
    parts = []
    gaussian = _finite(metrics, "reported_gaussian_test_ll")
    if gaussian is not None:
        parts.append(f"Gaussian {gaussian:.2f}: {_signed(test - gaussian)} nats")
    true_ll, gap = _finite(metrics, "true_test_ll"), _finite(metrics, "kl_gap")
    if true_ll is not None and gap is not None:
        offset = _finite(metrics, "ll_offset") or 0.0
        parts.append(f"true {true_ll + offset:.2f}: KL gap {gap:.3g} nats")
    return f"test LL {test:.2f}" + (f" ({'; '.join(parts)})" if parts else "")


def train_result_line(name: str, outcome: TrialOutcome) -> str:
    """The closing line of ``relgrad train``: the result, its yardsticks and why training stopped."""
    if outcome.status != STATUS_OK:
        return f"{name}: {outcome.status} ({outcome.reason})"
    metrics = outcome.metrics
    train_time = _finite(metrics, "train_time_s")
    spent = f" in {train_time:.1f} s of training" if train_time is not None else ""
    why = (
        f"stopped by {outcome.stopped_reason} after {outcome.steps} steps"
        if outcome.stopped_reason
        else outcome.reason
    )
    absent = outcome.tags.get(TAG_GAUSSIAN_ABSENT, "")
    no_yardstick = f"; no Gaussian yardstick: {absent}" if absent else ""
    return f"{name}: {ll_against_yardsticks(metrics)}{no_yardstick}; {why}{spent}"


def tune_result_lines(best: Mapping[str, Any]) -> list[str]:
    """The end of ``relgrad tune``: the best configuration, its retrained test LL against the Gaussian
    and against the default configuration retrained the same way (``best["default"]``, when present)."""
    shown = ", ".join(
        f"{k} {best[k]:.3g}" if isinstance(best.get(k), float) else f"{k} {best.get(k)}"
        for k in ("depth", "lr", "alpha", "batch_size")
    )
    val, offset = _finite(best, "_val_ll"), _finite(best, "ll_offset")
    if val is None:
        lines = [f"best config ({shown})"]
    elif offset is None:  # not retrained: the search's LL on the tensors the flow saw
        lines = [f"best config ({shown}): search val LL {val:.2f} (standardised data)"]
    else:
        lines = [f"best config ({shown}): search val LL {val + offset:.2f}"]
    if best.get(TAG_STATUS) is None:
        return lines  # not retrained
    # each retrain is a run of its own (role best / default), not counted among the search's trials
    lines.append(f"  retrained as {best.get('run_name', 'its own run')}: {_retrained(best)}")
    default = best.get(ROLE_DEFAULT)
    if isinstance(default, Mapping) and default.get(TAG_STATUS) is not None:
        named = f" as {default['run_name']}" if default.get("run_name") else ""
        lines.append(f"  default config retrained the same way{named}: {_retrained(default)}")
        ours, theirs = _finite(best, "reported_test_ll"), _finite(default, "reported_test_ll")
        if ours is not None and theirs is not None:
            verdict = "beats" if ours > theirs else "does not beat"
            lines.append(f"  the search {verdict} the default: {_signed(ours - theirs)} nats of test LL")
    return lines


def _retrained(run: Mapping[str, Any]) -> str:
    if run.get(TAG_STATUS) != STATUS_OK:
        return f"{run.get(TAG_STATUS)}"
    stopped = run.get(TAG_STOPPED_REASON)
    return ll_against_yardsticks(run) + (f"; stopped by {stopped}" if stopped else "")
