"""sklearn digits in logit space, and the change of variables back to pixel space."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits as sklearn_digits

from relgrad_core.data import (
    bits_per_dim,
    inverse_logit_transform,
    load_dataset,
    logit_log_det,
    logit_to_unit_log_prob,
    logit_transform,
    unit_to_levels_log_prob,
)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=1, dtype=torch.float64)


def test_split_sizes_and_dim(digits) -> None:
    assert digits.dim == 64
    sizes = (len(digits.train), len(digits.val), len(digits.test))
    assert sum(sizes) == 1797
    assert sizes == (1797 - 2 * 270, 270, 270)  # 15% of 1797 rounds to 270
    assert digits.info["lam"] == 1e-6 and digits.info["levels"] == 17
    assert "logit" in digits.transform


def test_preprocessing_recovers_the_pixels(digits) -> None:
    """Undo the standardisation with the recorded training statistics, then floor(17·x) of every row
    gives back an sklearn image: dequantisation noise stays < 1 level."""
    stats = digits.info["standardization"]
    mean, std = torch.tensor(stats["mean"]), torch.tensor(stats["std"])
    all_rows = torch.cat([digits.train, digits.val, digits.test]) * std + mean
    levels = torch.floor(inverse_logit_transform(all_rows, 1e-6) * 17).numpy()
    original = sklearn_digits().data
    sort = lambda a: a[np.lexsort(a.T[::-1])]  # noqa: E731
    np.testing.assert_array_equal(sort(levels), sort(original))
    # the noise really is continuous, not a constant offset
    fractional = inverse_logit_transform(all_rows, 1e-6) * 17 - torch.from_numpy(levels)
    assert 0.4 < float(fractional.mean()) < 0.6


def test_seeded_and_configurable() -> None:
    a = load_dataset("digits", seed=2, val_frac=0.1, test_frac=0.2)
    b = load_dataset("digits", seed=2, val_frac=0.1, test_frac=0.2)
    c = load_dataset("digits", seed=3, val_frac=0.1, test_frac=0.2)
    assert torch.equal(a.train, b.train) and torch.equal(a.test, b.test)
    assert not torch.equal(a.train, c.train)
    assert (len(a.val), len(a.test)) == (180, 359)
    assert len(load_dataset("digits", max_rows=100).train) == 100


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"val_frac": 0.0}, "val_frac"),
        ({"test_frac": 1.2}, "test_frac"),
        ({"val_frac": 0.6, "test_frac": 0.5}, "empty split"),
        ({"lam": 0.5}, "lam"),
        ({"max_rows": 0}, "max_rows"),
    ],
)
def test_bad_arguments(kwargs: dict[str, float], name: str) -> None:
    with pytest.raises((ValueError, TypeError), match=name):
        load_dataset("digits", **kwargs)


@pytest.mark.parametrize("lam", [1e-6, 0.05])
def test_logit_log_det_matches_autograd(lam: float) -> None:
    x = torch.rand(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = logit_transform(x, lam)
    for row in range(len(x)):
        jac = torch.autograd.functional.jacobian(lambda v: logit_transform(v, lam), x[row])
        expected = torch.linalg.slogdet(jac).logabsdet
        torch.testing.assert_close(logit_log_det(y[row : row + 1], lam)[0], expected)
    torch.testing.assert_close(inverse_logit_transform(y, lam), x)


def test_unit_space_density_is_normalised() -> None:
    """A standard normal in logit space, moved to [0, 1] with the correction, integrates to 1."""
    lam = 1e-6
    step = 1e-5
    x = torch.arange(step / 2, 1.0, step, dtype=torch.float64)[:, None]
    y = logit_transform(x, lam)
    log_p_y = torch.distributions.Normal(0.0, 1.0).log_prob(y).sum(dim=1)
    density = logit_to_unit_log_prob(log_p_y, y, lam).exp()
    assert float(density.sum() * step) == pytest.approx(1.0, abs=1e-4)


def test_levels_and_bits_per_dim() -> None:
    log_p_unit = torch.tensor([0.0, -64.0], dtype=torch.float64)
    levels = unit_to_levels_log_prob(log_p_unit, dim=64, levels=17)
    torch.testing.assert_close(levels, log_p_unit - 64 * math.log(17))
    # uniform on [0,1]^D is exactly log2(levels) bits per dimension
    assert float(bits_per_dim(log_p_unit, dim=64, levels=256)[0]) == pytest.approx(8.0)


def test_shape_mismatch_is_reported() -> None:
    with pytest.raises(ValueError, match="one value per row"):
        logit_to_unit_log_prob(torch.zeros(3), torch.zeros(4, 2))
