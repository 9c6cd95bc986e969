"""The hyper-parameter search read as a result: what it found, against the Gaussian yardstick and against
the default configuration trained the same way; its LL against trial budget; what mattered.

Importances are computed from the MLflow runs themselves (each trial's searched parameters and its best
validation LL), with Optuna's fANOVA evaluator on an in-memory study: this works for any tracking store
(a server too), needs neither the Optuna storage file nor the ``study`` package, and gives the same
numbers as the sweep's own Optuna study would for the same trials. Trials that ASHA stopped early count
with the best LL they reached, as the search itself saw them.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from analysis import learning_figures
from analysis.builder import Builder
from analysis.render import Section
from analysis.schema import (
    KIND_HPO,
    ROLE_BEST,
    ROLE_DEFAULT,
    STATUS_OK,
    TAG_KIND,
    TAG_ROLE,
    TAG_STATUS,
    TAG_SWEEP,
)

#: The parameters an HPO sweep searches (``study.sweep.run_hpo``'s space), with how Optuna samples them.
SEARCHED: dict[str, str] = {
    "lr": "log",
    "alpha": "float",
    "depth": "categorical",
    "batch_size": "categorical",
}
MIN_TRIALS_FOR_IMPORTANCE = 4


def search_trials(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """HPO trials with their searched parameters, the best val LL of their curve (else the last logged),
    and how many training steps they got (their budget; ASHA's stopped trials have fewer)."""
    columns = [TAG_SWEEP, "method", *SEARCHED, "dim", "dataset", "best_val_ll", "steps", TAG_STATUS, "run_id"]
    trials = runs[runs[TAG_KIND] == KIND_HPO].copy()
    if trials.empty:
        return pd.DataFrame(columns=columns)
    trials["best_val_ll"] = trials["val_ll"]
    trials["steps"] = np.nan
    if len(curves):
        hpo_curves = curves[curves["run_id"].isin(trials["run_id"])]
        trials["best_val_ll"] = trials["run_id"].map(hpo_curves.groupby("run_id")["val_ll"].max())
        trials["best_val_ll"] = trials["best_val_ll"].fillna(trials["val_ll"])
        trials["steps"] = trials["run_id"].map(hpo_curves.groupby("run_id")["step"].max())
    return trials[columns].reset_index(drop=True)


def importances(trials: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """``parameter, importance`` (fANOVA shares, summing to 1) of the searched parameters that varied, over
    the ok trials with a finite best val LL; empty with fewer than :data:`MIN_TRIALS_FOR_IMPORTANCE`."""
    import optuna

    ok = trials[(trials[TAG_STATUS] == STATUS_OK) & np.isfinite(trials["best_val_ll"].astype(float))]
    varied = [p for p in SEARCHED if p in ok and ok[p].nunique() > 1]
    if len(ok) < MIN_TRIALS_FOR_IMPORTANCE or not varied:
        return pd.DataFrame(columns=["parameter", "importance"])
    distributions = {}
    for name in varied:
        values = ok[name]
        if SEARCHED[name] == "categorical":
            distributions[name] = optuna.distributions.CategoricalDistribution(
                sorted(values.unique().tolist())
            )
        else:
            low, high = float(values.min()), float(values.max())
            distributions[name] = optuna.distributions.FloatDistribution(
                low, high, log=SEARCHED[name] == "log"
            )
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created" line in the report's output
    try:
        study = optuna.create_study(direction="maximize")
    finally:
        optuna.logging.set_verbosity(verbosity)
    for _, row in ok.iterrows():
        params = {n: (row[n].item() if hasattr(row[n], "item") else row[n]) for n in varied}
        study.add_trial(
            optuna.trial.create_trial(
                params=params, distributions=distributions, value=float(row["best_val_ll"])
            )
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna's experimental-feature warnings
        shares = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed)
        )
    return pd.DataFrame({"parameter": list(shares), "importance": [float(v) for v in shares.values()]})


def _reported(frame: pd.DataFrame, column: str) -> float:
    """The reported-space value of a retrained run's metric (``test_ll`` → ``reported_test_ll``)."""
    if frame.empty:
        return math.nan
    row = frame.iloc[-1]
    value = row.get(f"reported_{column}")
    if value is None or not np.isfinite(value):
        value = row.get(column)
    return float(value) if value is not None and np.isfinite(value) else math.nan


def outcome_table(trials: pd.DataFrame, retrained: pd.DataFrame) -> pd.DataFrame:
    """One row per HPO sweep: the best configuration, its retrained test LL, the default configuration's
    test LL on the same schedule, the Gaussian yardstick, and the gains (reported space, nats)."""
    columns = [TAG_SWEEP, "method", *SEARCHED, "trials", "best test LL", "default test LL", "Gaussian"]
    columns += ["gain over Gaussian", "gain over default"]
    rows = []
    ok = trials[(trials[TAG_STATUS] == STATUS_OK) & trials["best_val_ll"].notna()]
    for sweep, part in ok.groupby(TAG_SWEEP, sort=True):
        top = part.loc[part["best_val_ll"].idxmax()]
        mine = retrained[retrained[TAG_SWEEP] == sweep] if len(retrained) else retrained
        best = mine[mine[TAG_ROLE] == ROLE_BEST] if len(mine) else mine
        default = mine[mine[TAG_ROLE] == ROLE_DEFAULT] if len(mine) else mine
        best_ll, default_ll = _reported(best, "test_ll"), _reported(default, "test_ll")
        gaussian = _reported(best, "gaussian_test_ll")
        rows.append(
            {TAG_SWEEP: sweep, "method": top["method"]}
            | {p: top[p] for p in SEARCHED}
            | {
                "trials": len(part),
                "best test LL": best_ll,
                "default test LL": default_ll,
                "Gaussian": gaussian,
                "gain over Gaussian": best_ll - gaussian,
                "gain over default": best_ll - default_ll,
            }
        )
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------------------------
# The report's section
# --------------------------------------------------------------------------------------------
SEARCH_TITLE = "Hyper-parameter search"


def search_section(
    b: Builder, runs: pd.DataFrame, retrained: pd.DataFrame, curves: pd.DataFrame
) -> Section | None:
    """What the search found against its yardsticks, its LL against trial budget and the parameters'
    importances; None when the report has no HPO sweep (a scaling report gets no empty section)."""
    trials = search_trials(runs, curves)
    if trials.empty:
        return None
    b.table("hpo_trials", trials)
    outcome = b.table("hpo_outcome", outcome_table(trials, retrained))
    section = Section(SEARCH_TITLE)
    for _, row in outcome.iterrows():
        section.paragraphs.append(_verdict(row))
    hpo_curves = curves[curves["run_id"].isin(trials["run_id"])] if len(curves) else curves
    references = []
    if len(outcome) == 1:
        row = outcome.iloc[0]
        offset = _offset(retrained)
        references = [
            (label, float(row[column]) - offset)
            for label, column in (
                ("Gaussian yardstick (test)", "Gaussian"),
                ("best config retrained (test)", "best test LL"),
                ("default config retrained (test)", "default test LL"),
            )
            if np.isfinite(row[column]) and np.isfinite(offset)
        ]
    plotted = learning_figures.plot_search_budget(hpo_curves, references, b.ctx, b.out_dir / "figures")
    if plotted is not None:
        b.figure(plotted.paths)
        clipped = f" {plotted.clipped} early evaluation(s) lie below the axis." if plotted.clipped else ""
        section.figures.append(
            (
                "Validation LL of each search trial against its training steps (trials ASHA stopped end "
                f"early), with the retrained test LLs and the Gaussian yardstick.{clipped}",
                plotted.paths[0],
            )
        )
    shares = b.table("hpo_importances", importances(trials))
    if len(shares):
        shown = learning_figures.plot_importances(shares, b.ctx, b.out_dir / "figures")
        if shown is not None:
            b.figure(shown.paths)
            section.figures.append(
                (
                    "Share of the variance of the trials' best validation LL explained by each parameter "
                    "(fANOVA on the MLflow runs).",
                    shown.paths[0],
                )
            )
    shown = outcome.set_index(TAG_SWEEP).T.reset_index().rename(columns={"index": "per sweep"})
    shown.columns.name = None
    caption = "Best configuration, retrained, against the yardstick and the default (reported LLs, nats)"
    section.tables.append((caption, shown, "hpo_outcome"))
    section.tables.append(("Every search trial", trials, "hpo_trials"))
    return section


def _offset(retrained: pd.DataFrame) -> float:
    """Reported LL − the LL on the tensors (curves are on the tensors; the outcome is reported)."""
    if retrained.empty or "ll_offset" not in retrained or retrained["ll_offset"].isna().all():
        return 0.0
    return float(retrained["ll_offset"].dropna().iloc[-1])


def _verdict(row: pd.Series) -> str:
    """One sentence: the retrained best's test LL against the Gaussian and the default (LLs to 0.01 nat,
    so that the differences read off them)."""
    best, default, gaussian = row["best test LL"], row["default test LL"], row["Gaussian"]
    text = f"Sweep {row[TAG_SWEEP]}: {row['trials']} trials of {row['method']}; the best configuration"
    if not np.isfinite(best):
        return text + " was not retrained, so it has no test LL."
    text += f" retrained reaches a test LL of {best:.2f}"
    if np.isfinite(gaussian):
        text += f", {best - gaussian:.2f} nats above the Gaussian yardstick ({gaussian:.2f})"
    if np.isfinite(default):
        verb = "beats" if best > default else "does not beat"
        text += (
            f"; it {verb} the default configuration trained the same way ({default:.2f}) by "
            f"{best - default:.2f} nats"
        )
    return text + "."


def headline_lines(b: Builder) -> list[str]:
    """The search part of the headline: per HPO sweep, the retrained best against the yardstick and the
    default (the section's first paragraphs)."""
    outcome = b.frames.get("hpo_outcome")
    return [] if outcome is None else [_verdict(row) for _, row in outcome.iterrows()]
