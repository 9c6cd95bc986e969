"""Two-dimensional toy densities, generated on the fly from a seed.

The shapes are the usual ones of the flow literature (moons, rings, checkerboard, sine, 2 spirals,
Gaussian mixtures, cf. Grathwohl et al. 2019, FFJORD), written here from their geometric
description. Where the density has a closed form it is set as ``true_log_prob``, so a trained
model's test log-likelihood can be compared with the truth:

- ``8gaussians``, ``trimodal``: isotropic Gaussian mixtures.
- ``checkerboard``: uniform on the 8 dark cells of a 4×4 board over [−4, 4]², density 1/32.
- ``sine``: ``x₁ ~ U[−4, 4]``, ``x₂ | x₁ ~ N(2 sin x₁, noise²)``.
- ``rings``: ring ``k`` (radius ``r_k``) picked with probability ∝ ``r_k``, a uniform angle and
  radius ``r_k + noise·ε``; the polar change of variables gives
  ``p(x) = Σ_k w_k [φ(s − r_k) + φ(s + r_k)] / (2π s)`` with ``s = ‖x‖`` (the ``+r_k`` term is
  the mass of a negative radius, folded through the origin), so it is exact.

``moons`` and ``2spirals`` have no closed form (a Gaussian smoothed along a curve).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from relgrad_core.checks import check_dtype, check_positive_int, check_positive_number, check_seed
from relgrad_core.data._split import to_tensor
from relgrad_core.data.dataset import Dataset

LogProb = Callable[[torch.Tensor], torch.Tensor]

# Geometry constants (chosen so every set fits roughly in [−4, 4]²).
EIGHT_RADIUS = 2.5
TRIMODAL_RADIUS = 2.5
TRIMODAL_WEIGHTS = (0.5, 0.3, 0.2)
RING_RADII = (1.0, 2.0, 3.0, 4.0)
BOARD_HALF_WIDTH = 4.0
BOARD_CELLS = 4
SINE_HALF_WIDTH = 4.0
SINE_AMPLITUDE = 2.0
SPIRAL_TURNS = 1.5


def _circle_centres(count: int, radius: float, offset: float = 0.0) -> np.ndarray:
    angles = offset + 2.0 * math.pi * np.arange(count) / count
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


@dataclass(frozen=True)
class GaussianMixtureLogProb:
    """``log Σ_k w_k N(x; c_k, std²·I)`` for 2-D rows ``x``, in the input's dtype.

    A module-level callable (not a closure) so that a :class:`Dataset` stays picklable.
    """

    centres: tuple[tuple[float, float], ...]
    weights: tuple[float, ...]
    std: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        c = torch.tensor(self.centres, dtype=x.dtype, device=x.device)
        log_w = torch.tensor(self.weights, dtype=x.dtype, device=x.device).log()
        sq = (x[:, None, :] - c[None, :, :]).pow(2).sum(-1)
        log_norm = -math.log(2.0 * math.pi * self.std**2)
        return torch.logsumexp(log_w - sq / (2.0 * self.std**2), dim=1) + log_norm


def gaussian_mixture_log_prob(centres: np.ndarray, weights: np.ndarray, std: float) -> GaussianMixtureLogProb:
    """The closed-form log-density of the mixture that :func:`_sample_mixture` draws from."""
    return GaussianMixtureLogProb(
        tuple((float(a), float(b)) for a, b in centres), tuple(float(w) for w in weights), std
    )


def _sample_mixture(
    n: int, rng: np.random.Generator, centres: np.ndarray, weights: np.ndarray, std: float
) -> np.ndarray:
    component = rng.choice(len(centres), size=n, p=weights)
    return centres[component] + std * rng.standard_normal((n, 2))


def _eight_gaussians(n: int, rng: np.random.Generator, noise: float) -> tuple[np.ndarray, LogProb]:
    centres = _circle_centres(8, EIGHT_RADIUS)
    weights = np.full(8, 1.0 / 8.0)
    return _sample_mixture(n, rng, centres, weights, noise), gaussian_mixture_log_prob(
        centres, weights, noise
    )


def _trimodal(n: int, rng: np.random.Generator, noise: float) -> tuple[np.ndarray, LogProb]:
    centres = _circle_centres(3, TRIMODAL_RADIUS, offset=math.pi / 2.0)
    weights = np.asarray(TRIMODAL_WEIGHTS)
    return _sample_mixture(n, rng, centres, weights, noise), gaussian_mixture_log_prob(
        centres, weights, noise
    )


def checkerboard_log_prob(x: torch.Tensor) -> torch.Tensor:
    """``−log 32`` on the dark (i + j even) cells of the 4×4 board on [−4, 4]², ``−inf`` elsewhere.

    Cells are taken closed, so a point on a cell edge (e.g. after rounding to float32) counts as
    inside when any adjacent dark cell contains it; edges have measure zero, so the density is
    unchanged.
    """
    side = 2.0 * BOARD_HALF_WIDTH / BOARD_CELLS
    t = (x + BOARD_HALF_WIDTH) / side
    lower = torch.ceil(t) - 1  # the cell to the left/below of an edge, else the cell itself
    upper = torch.floor(t)
    inside = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for i in (lower[:, 0], upper[:, 0]):
        for j in (lower[:, 1], upper[:, 1]):
            on_board = (i >= 0) & (i < BOARD_CELLS) & (j >= 0) & (j < BOARD_CELLS)
            inside |= on_board & (torch.remainder(i + j, 2) == 0)
    dark_area = (BOARD_CELLS**2 // 2) * side**2
    value = torch.full((x.shape[0],), -math.log(dark_area), dtype=x.dtype, device=x.device)
    return torch.where(inside, value, torch.full_like(value, -math.inf))


def _checkerboard(n: int, rng: np.random.Generator, noise: float | None) -> tuple[np.ndarray, LogProb]:
    side = 2.0 * BOARD_HALF_WIDTH / BOARD_CELLS
    dark = np.array([(i, j) for i in range(BOARD_CELLS) for j in range(BOARD_CELLS) if (i + j) % 2 == 0])
    cells = dark[rng.integers(len(dark), size=n)]
    points = -BOARD_HALF_WIDTH + side * (cells + rng.random((n, 2)))
    return points, checkerboard_log_prob


@dataclass(frozen=True)
class SineLogProb:
    """``−log 8 + log N(x₂; 2 sin x₁, noise²)`` for ``|x₁| ≤ 4``, ``−inf`` outside."""

    noise: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        resid = x[:, 1] - SINE_AMPLITUDE * torch.sin(x[:, 0])
        log_normal = -0.5 * (resid / self.noise) ** 2 - math.log(self.noise * math.sqrt(2 * math.pi))
        value = log_normal - math.log(2.0 * SINE_HALF_WIDTH)
        inside = x[:, 0].abs() <= SINE_HALF_WIDTH
        return torch.where(inside, value, torch.full_like(value, -math.inf))


@dataclass(frozen=True)
class RingsLogProb:
    """``log Σ_k w_k [φ(s − r_k) + φ(s + r_k)] − log(2π s)`` with ``s = ‖x‖``, ``φ = N(0, noise²)``."""

    radii: tuple[float, ...]
    weights: tuple[float, ...]
    noise: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        r = torch.tensor(self.radii, dtype=x.dtype, device=x.device)
        log_w = torch.tensor(self.weights, dtype=x.dtype, device=x.device).log()
        s = x.norm(dim=1, keepdim=True)
        log_phi = -0.5 * math.log(2.0 * math.pi) - math.log(self.noise)
        near = log_phi - 0.5 * ((s - r) / self.noise) ** 2
        folded = log_phi - 0.5 * ((s + r) / self.noise) ** 2  # negative radii, through the origin
        radial = torch.logsumexp(torch.stack([near, folded]) + log_w, dim=(0, 2))
        return radial - torch.log(2.0 * math.pi * s[:, 0])


def _sine(n: int, rng: np.random.Generator, noise: float) -> tuple[np.ndarray, LogProb]:
    x1 = rng.uniform(-SINE_HALF_WIDTH, SINE_HALF_WIDTH, size=n)
    x2 = SINE_AMPLITUDE * np.sin(x1) + noise * rng.standard_normal(n)
    return np.stack([x1, x2], axis=1), SineLogProb(noise)


def _rings(n: int, rng: np.random.Generator, noise: float) -> tuple[np.ndarray, LogProb]:
    radii = np.asarray(RING_RADII)
    weights = radii / radii.sum()  # uniform density along the total arc length
    ring = rng.choice(len(radii), size=n, p=weights)
    radius = radii[ring] + noise * rng.standard_normal(n)
    angle = rng.uniform(0.0, 2.0 * math.pi, size=n)
    points = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)

    return points, RingsLogProb(RING_RADII, tuple(float(w) for w in weights), noise)


def _moons(n: int, rng: np.random.Generator, noise: float) -> tuple[np.ndarray, None]:
    t = rng.uniform(0.0, math.pi, size=n)
    lower = rng.random(n) < 0.5
    upper_arc = np.stack([np.cos(t), np.sin(t)], axis=1)
    lower_arc = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    points = np.where(lower[:, None], lower_arc, upper_arc)
    centred = 2.0 * (points - np.array([0.5, 0.25]))
    return centred + noise * rng.standard_normal((n, 2)), None


def _two_spirals(n: int, rng: np.random.Generator, noise: float) -> tuple[np.ndarray, None]:
    max_angle = SPIRAL_TURNS * 2.0 * math.pi
    # sqrt makes the density per unit arc length roughly even: arc length grows like angle².
    angle = max_angle * np.sqrt(rng.random(n))
    arm = angle[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1) * (4.0 / max_angle)
    sign = np.where(rng.random(n) < 0.5, 1.0, -1.0)[:, None]
    return sign * arm + noise * rng.standard_normal((n, 2)), None


Generator = Callable[[int, np.random.Generator, float], tuple[np.ndarray, LogProb | None]]


@dataclass(frozen=True)
class ToySpec:
    """How to draw one toy set; ``default_noise`` is ``None`` when the set has no noise knob."""

    sample: Generator
    default_noise: float | None
    description: str


TOY_SETS: dict[str, ToySpec] = {
    "moons": ToySpec(_moons, 0.1, "two interleaved half circles + Gaussian noise"),
    "rings": ToySpec(_rings, 0.08, "4 concentric rings, Gaussian radial noise"),
    "checkerboard": ToySpec(_checkerboard, None, "uniform on the dark cells of a 4×4 board"),
    "sine": ToySpec(_sine, 0.25, "x₂ = 2 sin x₁ + Gaussian noise, x₁ ~ U[−4, 4]"),
    "trimodal": ToySpec(_trimodal, 0.5, "3-component isotropic Gaussian mixture"),
    "2spirals": ToySpec(_two_spirals, 0.1, "two interleaved spirals + Gaussian noise"),
    "8gaussians": ToySpec(_eight_gaussians, 0.25, "8 Gaussians on a circle of radius 2.5"),
}


def load_toy(
    name: str,
    *,
    n_train: int = 10000,
    n_val: int = 2000,
    n_test: int = 2000,
    noise: float | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Dataset:
    """Draw ``n_train + n_val + n_test`` points of toy set ``name`` with ``seed`` and split them.

    ``noise`` is the standard deviation of the set's Gaussian noise (``None``: the set's default);
    ``checkerboard`` has none and rejects it.
    """
    if name not in TOY_SETS:
        raise ValueError(f"unknown toy set {name!r}; valid: {', '.join(TOY_SETS)}")
    spec = TOY_SETS[name]
    sizes = [
        check_positive_int(f"n_{s}", n, where=name)
        for n, s in ((n_train, "train"), (n_val, "val"), (n_test, "test"))
    ]
    if spec.default_noise is None and noise is not None:
        raise TypeError(f"{name}: this set has no noise parameter (got noise={noise!r})")
    if spec.default_noise is not None:
        noise = spec.default_noise if noise is None else check_positive_number("noise", noise, where=name)
    check_seed(seed)
    check_dtype(dtype)

    rng = np.random.default_rng(seed)
    points, log_prob = spec.sample(sum(sizes), rng, noise)  # type: ignore[arg-type]
    data = to_tensor(points, dtype)
    train, val, test = torch.split(data, sizes)
    true_test_ll = None if log_prob is None else float(log_prob(test.double()).mean())
    return Dataset(
        name=name,
        train=train.clone(),
        val=val.clone(),
        test=test.clone(),
        transform="none (raw 2-D coordinates)",
        true_log_prob=log_prob,
        true_test_ll=true_test_ll,
        info={"description": spec.description, "noise": noise, "seed": seed},
    )
