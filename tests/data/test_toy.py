"""Toy 2-D sets: reproducibility, and closed-form densities that are normalised and match samples."""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable

import pytest
import torch

from relgrad_core.data import load_dataset
from relgrad_core.data.toy import TOY_SETS, checkerboard_log_prob

KNOWN_DENSITY = ("8gaussians", "trimodal", "checkerboard", "sine", "rings")


def _grid(half_width: float, step: float) -> tuple[torch.Tensor, float]:
    """Cell midpoints of a square grid on [−h, h]² (float64) and the cell area."""
    ticks = torch.arange(-half_width + step / 2, half_width, step, dtype=torch.float64)
    xx, yy = torch.meshgrid(ticks, ticks, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], dim=1), step * step


@pytest.mark.parametrize("name", sorted(TOY_SETS))
def test_shapes_and_reproducibility(name: str) -> None:
    a = load_dataset(name, seed=3, n_train=50, n_val=20, n_test=30)
    b = load_dataset(name, seed=3, n_train=50, n_val=20, n_test=30)
    c = load_dataset(name, seed=4, n_train=50, n_val=20, n_test=30)
    assert (a.train.shape, a.val.shape, a.test.shape) == ((50, 2), (20, 2), (30, 2))
    assert a.train.dtype == torch.float32
    assert torch.equal(a.train, b.train) and torch.equal(a.val, b.val)
    assert not torch.equal(a.train, c.train)
    assert a.true_log_prob is not None if name in KNOWN_DENSITY else a.true_log_prob is None


@pytest.mark.parametrize("name", KNOWN_DENSITY)
def test_closed_form_integrates_to_one(name: str) -> None:
    data = load_dataset(name, n_train=1, n_val=1, n_test=1)
    assert data.true_log_prob is not None
    points, area = _grid(half_width=6.0, step=0.02)
    total = float(data.true_log_prob(points).exp().sum() * area)
    assert total == pytest.approx(1.0, abs=2e-3)


def _binned_masses(
    log_prob: Callable[[torch.Tensor], torch.Tensor], samples: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per 1×1 bin of [−6, 6]²: the density's mass (fine-grid sum) and the samples' fraction."""
    points, area = _grid(half_width=6.0, step=0.02)
    edges = torch.arange(-6.0, 6.0 + 1e-9, 1.0, dtype=torch.float64)

    def bin_index(x: torch.Tensor) -> torch.Tensor:
        ix = torch.bucketize(x[:, 0].contiguous(), edges) - 1
        iy = torch.bucketize(x[:, 1].contiguous(), edges) - 1
        return ix * (len(edges) - 1) + iy

    n_bins = (len(edges) - 1) ** 2
    model = torch.zeros(n_bins, dtype=torch.float64)
    model.index_add_(0, bin_index(points), log_prob(points).exp() * area)
    inside = (samples.abs() < 6.0).all(dim=1)
    empirical = torch.zeros(n_bins, dtype=torch.float64)
    empirical.index_add_(0, bin_index(samples[inside]), torch.ones(int(inside.sum()), dtype=torch.float64))
    return model, empirical / len(samples)


@pytest.mark.parametrize("name", KNOWN_DENSITY)
def test_samples_follow_the_closed_form(name: str) -> None:
    """Total variation between binned samples and binned closed form is at sampling-noise level.

    20 000 samples over ≤ 144 bins give a TV of about 0.03; a mixture with wrong weights
    (e.g. equal instead of 0.5/0.3/0.2) is ≥ 0.16 away.
    """
    data = load_dataset(name, dtype=torch.float64, n_train=1, n_val=1, n_test=20000)
    assert data.true_log_prob is not None and data.true_test_ll is not None
    log_p_test = data.true_log_prob(data.test)
    assert torch.isfinite(log_p_test).all()
    assert data.true_test_ll == pytest.approx(float(log_p_test.mean()))
    model, empirical = _binned_masses(data.true_log_prob, data.test)
    total_variation = 0.5 * float((model - empirical).abs().sum())
    assert total_variation < 0.06


def test_noise_changes_spread_and_is_validated() -> None:
    narrow = load_dataset("8gaussians", noise=0.05, n_train=2000, n_val=1, n_test=1)
    wide = load_dataset("8gaussians", noise=0.5, n_train=2000, n_val=1, n_test=1)
    radius = lambda t: t.norm(dim=1)  # noqa: E731
    assert float(radius(narrow.train).std()) < float(radius(wide.train).std())
    with pytest.raises(ValueError, match="noise"):
        load_dataset("moons", noise=-0.1)
    with pytest.raises(TypeError, match="no noise parameter"):
        load_dataset("checkerboard", noise=0.1)


@pytest.mark.parametrize("size", ["n_train", "n_val", "n_test"])
def test_bad_sizes_are_named(size: str) -> None:
    with pytest.raises(ValueError, match=size):
        load_dataset("rings", **{size: 0})


def test_checkerboard_support_and_edges() -> None:
    inside = torch.tensor([[-3.0, -3.0], [-1.0, -1.0], [1.5, 0.5], [-2.0, -2.0], [4.0, 4.0]])
    outside = torch.tensor([[-1.0, -3.0], [0.5, -1.5], [4.5, 0.0], [-3.0, 5.0]])
    assert torch.allclose(checkerboard_log_prob(inside), torch.full((5,), -math.log(32.0)))
    assert torch.isinf(checkerboard_log_prob(outside)).all()
    data = load_dataset("checkerboard", n_train=5000, n_val=1, n_test=1)
    assert torch.isfinite(checkerboard_log_prob(data.train)).all()


def test_float64_request_keeps_precision() -> None:
    a = load_dataset("sine", dtype=torch.float64, n_train=10, n_val=5, n_test=5)
    b = load_dataset("sine", dtype=torch.float32, n_train=10, n_val=5, n_test=5)
    assert a.train.dtype == torch.float64
    torch.testing.assert_close(a.train.float(), b.train)


@pytest.mark.parametrize("name", KNOWN_DENSITY)
def test_dataset_pickles_with_its_density(name: str) -> None:
    """Plain pickle (as multiprocessing uses) must work: densities are not closures."""
    data = load_dataset(name, n_train=5, n_val=5, n_test=5)
    copy = pickle.loads(pickle.dumps(data))
    assert copy.true_log_prob is not None and data.true_log_prob is not None
    torch.testing.assert_close(copy.true_log_prob(data.test), data.true_log_prob(data.test))
