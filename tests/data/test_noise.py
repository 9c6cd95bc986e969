"""The standard-normal timing set."""

from __future__ import annotations

import pytest
import torch

from relgrad_core.data import load_dataset


def test_shapes_dtype_and_true_density() -> None:
    data = load_dataset("noise", dim=6, n_train=40, n_val=10, n_test=20, dtype=torch.float64)
    assert data.train.shape == (40, 6) and data.val.shape == (10, 6) and data.test.shape == (20, 6)
    assert data.train.dtype == torch.float64
    assert data.true_log_prob is not None
    reference = torch.distributions.Normal(0.0, 1.0).log_prob(data.test).sum(dim=1)
    torch.testing.assert_close(data.true_log_prob(data.test), reference)
    assert data.true_test_ll == pytest.approx(float(reference.mean()))


def test_seeded() -> None:
    a = load_dataset("noise", dim=3, n_train=8, n_val=4, n_test=4, seed=5)
    b = load_dataset("noise", dim=3, n_train=8, n_val=4, n_test=4, seed=5)
    c = load_dataset("noise", dim=3, n_train=8, n_val=4, n_test=4, seed=6)
    assert torch.equal(a.train, b.train) and torch.equal(a.test, b.test)
    assert not torch.equal(a.train, c.train)


@pytest.mark.parametrize(
    ("kwargs", "name"), [({"dim": 0}, "dim"), ({"dim": 2, "n_val": -3}, "n_val"), ({"dim": 2.0}, "dim")]
)
def test_bad_sizes(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises((TypeError, ValueError), match=name):
        load_dataset("noise", **kwargs)
