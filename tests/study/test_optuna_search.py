"""The HPO searcher's study in optuna.db: a named objective, scheduler-stopped trials PRUNED."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from study.optuna_search import PruningOptunaSearch


def _searcher(storage: optuna.storages.BaseStorage) -> PruningOptunaSearch:
    return PruningOptunaSearch(
        space={"lr": FloatDistribution(1e-4, 1e-2, log=True)},
        metric="val_ll",
        mode="max",
        sampler=optuna.samplers.TPESampler(seed=0),
        storage=storage,
        study_name="unit",
    )


def test_names_the_objective_and_prunes_what_the_scheduler_stopped() -> None:
    storage = optuna.storages.InMemoryStorage()
    searcher = _searcher(storage)
    for trial_id in ("done", "stopped", "stopped-at-once", "failed"):
        assert searcher.suggest(trial_id) is not None
    # ran to its end: two evaluations, then the final report (status ok) once more
    searcher.on_trial_result("done", {"val_ll": -9.0, "training_iteration": 1})
    searcher.on_trial_result("done", {"val_ll": -8.0, "training_iteration": 2})
    searcher.on_trial_complete("done", {"val_ll": -8.0, "training_iteration": 3, "status": "ok"})
    # ASHA let it go on once, then stopped it on its second result (never passed to on_trial_result)
    searcher.on_trial_result("stopped", {"val_ll": -9.5, "training_iteration": 1})
    searcher.on_trial_complete("stopped", {"val_ll": -9.2, "training_iteration": 2, "status": "running"})
    searcher.on_trial_complete(
        "stopped-at-once", {"val_ll": -11.0, "training_iteration": 1, "status": "running"}
    )
    searcher.on_trial_complete("failed", None, error=True)

    study = optuna.load_study(study_name="unit", storage=storage)
    assert study.metric_names == ["val_ll"]
    trials = {t.number: t for t in study.trials}
    done, stopped, at_once, failed = (trials[i] for i in range(4))
    assert done.state == TrialState.COMPLETE and done.value == -8.0
    assert done.intermediate_values == {1: -9.0, 2: -8.0}
    assert stopped.state == TrialState.PRUNED and stopped.intermediate_values == {1: -9.5, 2: -9.2}
    assert stopped.value == -9.2  # Optuna gives a pruned trial its last intermediate value
    assert at_once.state == TrialState.PRUNED and at_once.intermediate_values == {1: -11.0}
    assert failed.state == TrialState.FAIL


def test_a_restored_searcher_keeps_its_bookkeeping(tmp_path) -> None:
    searcher = _searcher(optuna.storages.InMemoryStorage())
    searcher.suggest("a")
    searcher.on_trial_result("a", {"val_ll": -3.0, "training_iteration": 1})
    path = str(tmp_path / "searcher.pkl")
    searcher.save(path)  # what Tune checkpoints with the experiment
    restored = _searcher(optuna.storages.InMemoryStorage())
    restored.restore(path)
    restored.on_trial_complete("a", {"val_ll": -3.0, "training_iteration": 1, "status": "running"})
    [trial] = restored._ot_study.trials
    assert trial.state == TrialState.PRUNED and trial.intermediate_values == {1: -3.0}
