"""fit: every method learns, relative and ordinary close the gap to the truth, bad input and divergence."""

import math

import pytest
import torch

from relgrad_core import (
    DenseFlow,
    Diverged,
    SingularWeightError,
    evaluate_nll,
    fit,
    load_dataset,
    make_flow,
    method_names,
)


@pytest.fixture(scope="module")
def teacher():
    return load_dataset("teacher", dim=4, depth=2, n_train=3000, n_val=1000, n_test=1000, seed=0)


@pytest.fixture(scope="module")
def moons():
    return load_dataset("moons", n_train=2000, n_val=500, n_test=500, seed=0)


@pytest.mark.filterwarnings("ignore:fit stopped at the epoch cap")
@pytest.mark.parametrize("method", method_names())
def test_every_method_lowers_the_nll_on_a_toy_set(method, moons):
    flow = make_flow(method, 2, 2, device="cpu", seed=0)
    before, before_data = evaluate_nll(flow, moons.val), _data_nll(flow, moons.val)
    history = fit(flow, moons, method=method, lr=1e-2, batch_size=100, epochs=3, patience=None)
    assert len(history.records) == 3
    assert evaluate_nll(flow, moons.val) == pytest.approx(history.best_val_nll)  # best weights restored
    if method == "mlp":
        # the cost floor ignores the log-det term: it lowers the data term, which is its objective
        assert _data_nll(flow, moons.val) < before_data - 0.2
    else:
        assert history.best_val_nll < before - 0.2


def _data_nll(flow, x):
    with torch.no_grad():
        return -flow.data_log_prob(x).mean().item()


@pytest.mark.filterwarnings("ignore:fit stopped at the epoch cap")
@pytest.mark.parametrize("method", ["relative", "ordinary"])
def test_relative_and_ordinary_close_most_of_the_gap_on_teacher_data(method, teacher):
    flow = make_flow(method, 4, 2, device="cpu", seed=1)
    initial_ll = -evaluate_nll(flow, teacher.test)
    fit(flow, teacher, method=method, lr=1e-2, batch_size=100, epochs=12, patience=None)
    final_ll = -evaluate_nll(flow, teacher.test)
    closed = (final_ll - initial_ll) / (teacher.true_test_ll - initial_ll)
    assert closed > 0.9, f"{method} closed only {closed:.1%} of the gap"


def test_history_records_and_callback_stop(teacher):
    seen = []

    def callback(record):
        seen.append(record)
        return record.epoch == 2

    flow = make_flow("relative", 4, 2, device="cpu", seed=0)
    history = fit(
        flow,
        teacher,
        method="relative",
        lr=1e-3,
        batch_size=50,
        epochs=10,
        steps_per_epoch=7,
        callback=callback,
    )
    assert history.stopped_reason == "callback" and len(history.records) == 2 and seen == history.records
    first, second = history.records
    assert (first.step, second.step) == (7, 14)
    assert second.train_time_s > first.train_time_s > 0 and first.sec_per_iter > 0
    assert math.isfinite(first.train_data_nll) and first.val_ll == -first.val_nll
    assert first.train_ll == -first.train_nll


@pytest.mark.filterwarnings("ignore:fit stopped at the epoch cap")
@pytest.mark.parametrize("method", ["relative", "ordinary", "lu"])
def test_train_nll_is_the_exact_nll_of_the_training_data(method):
    """At each evaluation, train_nll is evaluate_nll on train (float64: an identity); train_data_nll is not.

    The training split is 240 rows and validation 60, so ``train_eval_size=240`` evaluates all of train.
    """
    data = load_dataset(
        "teacher", dim=5, depth=2, n_train=240, n_val=60, n_test=60, seed=3, dtype=torch.float64
    )
    flow = make_flow(method, 5, 2, device="cpu", seed=0, dtype=torch.float64)
    exact: list[tuple[float, float]] = []

    def callback(record):
        exact.append((evaluate_nll(flow, data.train), evaluate_nll(flow, data.val)))

    history = fit(
        flow,
        data,
        method=method,
        lr=1e-2,
        batch_size=40,
        epochs=3,
        patience=None,
        train_eval_size=240,
        callback=callback,
    )
    for record, (train_nll, val_nll) in zip(history.records, exact, strict=True):
        assert record.train_nll == pytest.approx(train_nll, rel=1e-12, abs=1e-10)
        assert record.val_nll == pytest.approx(val_nll, rel=1e-12, abs=1e-10)
        assert abs(record.train_data_nll - record.train_nll) > 1e-3  # the data term leaves out log|det W|


@pytest.mark.filterwarnings("ignore:fit stopped at the epoch cap")
def test_train_nll_defaults_to_a_fixed_subset_as_large_as_validation():
    """Default: the exact NLL of the same ``len(val)`` training rows at every evaluation."""
    from relgrad_core.training import train_eval_rows

    data = load_dataset(
        "teacher", dim=4, depth=1, n_train=400, n_val=50, n_test=50, seed=1, dtype=torch.float64
    )
    flow = make_flow("relative", 4, 2, device="cpu", seed=0, dtype=torch.float64)
    per_row: list[torch.Tensor] = []

    def callback(record):
        with torch.no_grad():
            per_row.append(-flow.log_prob(data.train))

    history = fit(
        flow, data, method="relative", lr=1e-2, batch_size=50, epochs=2, patience=None, callback=callback
    )
    rows = train_eval_rows(torch.arange(400), 50, seed=0)
    assert len(set(rows.tolist())) == 50
    for record, nll in zip(history.records, per_row, strict=True):
        assert record.train_nll == pytest.approx(float(nll[rows].mean()), rel=1e-12)
        assert record.train_nll != pytest.approx(float(nll.mean()), rel=1e-6)  # not all of train


def test_a_step_or_time_cap_on_a_still_improving_run_says_so(teacher, monkeypatch):
    _scripted_validation(monkeypatch, [5.0, 4.0, 3.0])
    flow = make_flow("relative", 4, 2, device="cpu", seed=0)
    history = fit(flow, teacher, method="relative", batch_size=500, max_steps=18, steps_per_epoch=6)
    assert history.stopped_reason == "max_steps (still improving)"
    monkeypatch.undo()
    _scripted_validation(monkeypatch, [5.0, 4.0, 4.5])
    flow = make_flow("relative", 4, 2, device="cpu", seed=0)
    history = fit(
        flow, teacher, method="relative", batch_size=500, max_steps=18, steps_per_epoch=6, patience=None
    )
    assert history.stopped_reason == "max_steps"  # the last evaluation was not the best: past the optimum


def test_max_steps(teacher):
    flow = make_flow("relative", 4, 2, device="cpu", seed=0)
    history = fit(flow, teacher, method="relative", lr=1e-3, batch_size=100, max_steps=5)
    assert history.stopped_reason == "max_steps (still improving)" and history.steps == 5


def test_patience_stops_and_restores_the_best_weights(teacher, monkeypatch):
    import relgrad_core.training as training

    # a validation NLL that only gets worse after epoch 1: patience 2 must stop after epoch 3
    scores = iter([1.0, 2.0, 3.0, 4.0, 5.0])
    snapshots = []
    real = training.evaluate_nll

    def fake_evaluate(flow, x, batch_size=1024):
        snapshots.append([p.detach().clone() for p in flow.parameters()])
        real(flow, x, batch_size)
        return next(scores)

    monkeypatch.setattr(training, "evaluate_nll", fake_evaluate)
    flow = make_flow("relative", 4, 2, device="cpu", seed=0)
    history = fit(flow, teacher, method="relative", lr=1e-2, batch_size=100, epochs=10, patience=2)
    assert history.stopped_reason == "patience" and len(history.records) == 3 and history.best_epoch == 1
    for restored, best in zip(flow.parameters(), snapshots[0], strict=True):
        torch.testing.assert_close(restored.detach(), best, rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore:fit stopped at the epoch cap")
def test_fit_accepts_a_tensor_pair():
    x = torch.randn(300, 3)
    history = fit(DenseFlow(3, 2), (x[:200], x[200:]), method="relative", lr=1e-3, batch_size=50, epochs=1)
    assert len(history.records) == 1


@pytest.mark.parametrize(
    "change,match",
    [
        ({"method": "newton"}, "unknown method 'newton'"),
        ({"lr": 0.0}, "learning rate must be a positive"),
        ({"lr": float("nan")}, "learning rate must be a positive"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"epochs": -1}, "epochs must be a positive integer"),
        ({"optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'"),
    ],
)
def test_bad_arguments_are_rejected_before_training(change, match):
    flow = DenseFlow(3, 2, seed=0)
    before = [p.clone() for p in flow.parameters()]
    x = torch.randn(100, 3)
    kwargs = {"method": "relative", "lr": 1e-3, "batch_size": 10, "epochs": 1} | change
    with pytest.raises(ValueError, match=match):
        fit(flow, (x, x), **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(before, flow.parameters(), strict=True))


@pytest.mark.parametrize(
    "train,match",
    [
        (torch.tensor([[0.0, float("nan"), 1.0]] * 5), "train split contains NaN or inf"),
        (torch.tensor([[0.0, float("inf"), 1.0]] * 5), "train split contains NaN or inf"),
        (torch.randn(5, 4), "train split has dimension 4 but the flow has dim=3"),
        (torch.empty(0, 3), "train split is empty"),
        (torch.randn(5), "must be 2-D"),
    ],
)
def test_bad_data_is_rejected_before_training(train, match):
    with pytest.raises(ValueError, match=match):
        fit(DenseFlow(3, 2), (train, torch.randn(4, 3)), method="relative", lr=1e-3, batch_size=2, epochs=1)


def test_singular_weights_are_rejected_before_training():
    flow = DenseFlow(3, 2, seed=0)
    with torch.no_grad():
        flow.layers[0].weight.zero_()
    with pytest.raises(SingularWeightError, match="layer 0: weight matrix is singular"):
        fit(flow, (torch.randn(10, 3), torch.randn(5, 3)), method="ordinary", lr=1e-3, batch_size=5, epochs=1)


@pytest.mark.parametrize("method", ["relative", "ordinary"])
def test_divergence_raises_with_the_step_and_keeps_finite_weights(method, teacher):
    flow = make_flow(method, 4, 2, device="cpu", seed=0)
    with pytest.raises(Diverged, match=r"diverged at step \d+") as info:
        fit(flow, teacher, method=method, lr=1e6, batch_size=100, epochs=5, optimizer="sgd")
    assert info.value.step >= 1 and info.value.method == method
    assert all(torch.isfinite(p).all() for p in flow.parameters())


@pytest.mark.parametrize("method", method_names())
def test_every_method_diverges_cleanly_with_a_huge_learning_rate(method, teacher):
    flow = make_flow(method, 4, 2, device="cpu", seed=0)
    initial = evaluate_nll(flow, teacher.val)
    with pytest.raises(Diverged, match="non-finite or absurd") as info:
        fit(flow, teacher, method=method, lr=1e3, batch_size=100, epochs=5)
    assert info.value.method == method
    # back at the best finite weights: here the initial ones, as no epoch finished
    assert "initial weights" in str(info.value)
    assert math.isfinite(evaluate_nll(flow, teacher.val))
    assert evaluate_nll(flow, teacher.val) == pytest.approx(initial)


def _scripted_validation(monkeypatch, scores):
    """Make fit see the validation NLLs ``scores``, one per epoch (the real evaluation still runs)."""
    import relgrad_core.training as training

    values, real = iter(scores), training.evaluate_nll

    def fake(flow, x, batch_size=1024):
        real(flow, x, batch_size)
        return next(values)

    monkeypatch.setattr(training, "evaluate_nll", fake)


def test_an_absurd_validation_nll_diverges_and_restores_the_best_epoch(teacher, monkeypatch):
    _scripted_validation(monkeypatch, [3.0, 2.0, 1e30])
    flow = make_flow("relative", 4, 2, device="cpu", seed=0)
    snapshots = []
    callback = lambda record: snapshots.append([p.detach().clone() for p in flow.parameters()])  # noqa: E731
    with pytest.raises(Diverged, match=r"validation NLL 1e\+30.*best weights \(epoch 2\)"):
        fit(flow, teacher, method="relative", lr=1e-3, batch_size=500, callback=callback)
    for restored, best in zip(flow.parameters(), snapshots[1], strict=True):
        torch.testing.assert_close(restored.detach(), best, rtol=0, atol=0)


def test_a_non_finite_gradient_diverges_and_the_weights_are_restored(teacher):
    from relgrad_core import FlopModel, MethodSpec, register_method, unregister_method
    from relgrad_core.gradients import data_term_direction

    def poisoned(flow, x):
        loss = data_term_direction(flow, x)
        flow.layers[0].weight.grad[0, 0] = float("nan")
        return loss

    register_method(MethodSpec("poisoned", DenseFlow, poisoned, FlopModel(lambda depth, gaussian: 1.0)))
    try:
        # caught by the next step's loss, or by the weight check when it was the epoch's last step
        for max_steps, what in ((3, "loss nan"), (1, "weights")):
            flow = make_flow("poisoned", 4, 2)
            with pytest.raises(Diverged, match=f"non-finite or absurd {what}"):
                fit(flow, teacher, method="poisoned", max_steps=max_steps, optimizer="sgd")
            assert all(bool(torch.isfinite(p).all()) for p in flow.parameters())
    finally:
        unregister_method("poisoned")


def test_by_default_fit_trains_until_patience(teacher, monkeypatch):
    _scripted_validation(monkeypatch, [5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 3.0, 2.0])
    flow = make_flow("relative", 4, 2, device="cpu", seed=0)
    history = fit(flow, teacher, method="relative", lr=1e-3, batch_size=500, patience=4)
    assert history.stopped_reason == "patience" and len(history.records) == 7 and history.best_epoch == 3


def test_an_epoch_cap_on_a_still_improving_run_says_so_and_warns(teacher, monkeypatch):
    _scripted_validation(monkeypatch, [5.0, 4.0, 3.0])
    flow = make_flow("relative", 4, 2, device="cpu", seed=0)
    with pytest.warns(UserWarning, match="still improving"):
        history = fit(flow, teacher, method="relative", lr=1e-3, batch_size=500, epochs=3, patience=5)
    assert history.stopped_reason == "epochs (still improving)"


def test_an_epoch_cap_after_the_optimum_is_plain_epochs(teacher, monkeypatch):
    _scripted_validation(monkeypatch, [5.0, 4.0, 4.5])
    flow = make_flow("relative", 4, 2, device="cpu", seed=0)
    history = fit(flow, teacher, method="relative", lr=1e-3, batch_size=500, epochs=3, patience=None)
    assert history.stopped_reason == "epochs" and history.best_epoch == 2
