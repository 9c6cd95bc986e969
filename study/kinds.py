"""What a ``relgrad`` command runs, under its three names: the command, the run's kind, the config class.

``relgrad tune`` runs a sweep of kind ``hpo`` (the ``kind`` tag of its parent run, which ``analysis`` reads)
configured by :class:`study.config.HpoConfig`; ``relgrad scaling`` a ``scaling`` sweep by ``ScalingConfig``;
``relgrad train`` one run of kind ``train`` by ``SingleRun``. The CLI, the sweep driver and the resume hint
take each name from here instead of mapping one to another by hand; each config class names the kind it
configures (``study.config.config_class(kind)`` finds it). Light to import (no pydantic), so that the CLI
parses without it.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.schema import KIND_HPO, KIND_SCALING, KIND_TRAIN


@dataclass(frozen=True)
class SweepKind:
    """``command``: the ``relgrad`` subcommand, also the preset section of a sweep and the ``where`` of its
    config's messages; ``kind``: the parent run's ``kind`` tag; ``sweep``: whether it runs a Tune sweep of
    trials (from a preset) rather than one run; ``reruns_failed``: whether a resume runs its failed trials
    again (a grid does; Optuna has already recorded them as failed, and restarting them would confuse its
    study)."""

    command: str
    kind: str
    sweep: bool
    reruns_failed: bool = False

    def __str__(self) -> str:
        return self.command


SCALING = SweepKind("scaling", KIND_SCALING, sweep=True, reruns_failed=True)
TUNE = SweepKind("tune", KIND_HPO, sweep=True)
TRAIN = SweepKind("train", KIND_TRAIN, sweep=False)
#: The commands that run trials, in the order ``relgrad --help`` lists them.
RUNS: tuple[SweepKind, ...] = (SCALING, TUNE, TRAIN)
#: Those that run Tune sweeps from a preset (and can be resumed).
SWEEPS: tuple[SweepKind, ...] = tuple(k for k in RUNS if k.sweep)


def by_command(command: str) -> SweepKind:
    """The kind ``relgrad <command>`` runs."""
    for kind in RUNS:
        if kind.command == command:
            return kind
    known = ", ".join(k.command for k in RUNS)
    raise KeyError(f"no relgrad command {command!r} runs trials (known: {known})")


def by_kind(kind: str) -> SweepKind:
    """The kind whose parent runs carry the tag ``kind=<kind>``."""
    for each in RUNS:
        if each.kind == kind:
            return each
    raise KeyError(f"unknown run kind {kind!r} (known: {', '.join(k.kind for k in RUNS)})")
