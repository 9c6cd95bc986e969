"""The per-step cost model ``t(D) = t0 + a·D² + c·D³`` and the order of a method's cost.

Why this model: at batch size B a step of every method does O(B·D²) matrix products (forward,
backward, weight gradient: the ``a·D²`` term, which carries the factor B) plus a fixed per-step
overhead (``t0``: Python, kernel launches, optimizer bookkeeping). The exact-gradient baselines add
O(D³) work independent of B (``inv``/``slogdet`` of each D×D weight: the ``c·D³`` term); ``jacobian``
adds O(B·D³) (B per-sample D×D Jacobians), cubic in D at a fixed B. ``relative``, ``mlp`` and ``lu``
(triangular products only) have no D³ work, so their ``c`` should be 0. Fitting all three terms over
*every* measured D lets small D pin the overhead instead of flattening a log-log slope.

The fit: non-negative least squares on relative error, i.e. rows divided by the measured time
(timings spread multiplicatively, and a point at 1 ms should count as much as one at 1 s).

Intervals: a seeded **residual bootstrap** (Davison & Hinkley, 1997, §6.2): the log residuals
of the fit, leverage-adjusted and centred, are resampled onto the fitted curve and the model refitted;
percentile intervals. Chosen over a bootstrap of the (D, t) pairs because the D³ term is an
extrapolative one: a pairs resample that happens to leave out the largest D carries no information on
c, and with one timing per D that happens in a third of the resamples, which left c's interval
touching 0 even for steps half made of D³ work.

Order rule (``cubic`` needs all three):

1. c > 0 is significant: a bootstrap test of c = 0 *under the null* (:func:`c_pvalue`) at the 1%
   level, and c's 95% interval excludes 0. An interval of a coefficient held at the boundary c ≥ 0
   alone called a pure a·D² + t0 with 10% noise "cubic" in up to 16% of repetitions; with the test
   that rate is 0–3% (tests/analysis/test_cost_model.py states the measured rates).
2. The D³ term is material: at least :data:`CUBIC_SHARE_MIN` of the fitted step at the largest D.
3. It is not carried by the largest D alone: refitted without it (so at least four distinct D are
   needed), the D³ share at the next D is still at least half that threshold. A step that jumps
   once the weights leave the cache (O(D²) memory traffic at a lower bandwidth) looks like a D³ term at
   one point; O(D³) work shows at every D.

``quadratic`` otherwise; ``not fitted`` (with the reason) when the points cannot carry the rule: fewer
than four distinct D (three fix t0, a, c exactly and leave nothing to test c against), or missing
timings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import nnls

from analysis.arguments import check_bootstrap
from analysis.errors import ReportError

#: Minimum share c·D³ / t(D) at the largest measured D for a D³ term to count as material.
CUBIC_SHARE_MIN = 0.10
MIN_DISTINCT_DIMS = 3  # to fit the three coefficients
#: To order a curve: the test of c needs residuals, and its confirmation the fit without the largest D.
ORDER_MIN_DIMS = 4
ORDER_CUBIC = "cubic"
ORDER_QUADRATIC = "quadratic"
ORDER_NOT_FITTED = "not fitted"
ORDERS: tuple[str, ...] = (ORDER_QUADRATIC, ORDER_CUBIC, ORDER_NOT_FITTED)
DEFAULT_LEVEL = 0.95
#: Level of the bootstrap test of c = 0 (false "cubic" calls on pure a·D² + t0 data stay below it).
TEST_LEVEL = 0.01
DEFAULT_BOOT = 1000
_POWERS = np.array([0.0, 2.0, 3.0])


def order_rule() -> str:
    """The order rule in words, for the report."""
    return (
        f"cubic when c > 0 is significant (bootstrap test at the {TEST_LEVEL:.0%} level, and c's 95% "
        f"interval excludes 0), c·D³ is at least {CUBIC_SHARE_MIN:.0%} of the fitted step at the largest "
        "measured D, and "
        f"without that D the D³ share at the next D is still ≥ {CUBIC_SHARE_MIN / 2:.0%} (not a one-point "
        "cache cliff); quadratic otherwise"
    )


def _design(dims: np.ndarray, powers: np.ndarray = _POWERS) -> np.ndarray:
    return dims[:, None] ** powers[None, :]


def _nnls_relative(dims: np.ndarray, values: np.ndarray, powers: np.ndarray = _POWERS) -> np.ndarray:
    """Coefficients (t0, a, c) ≥ 0 minimising Σ((t0 + a·D² + c·D³ − t) / t)² (or those of ``powers``)."""
    design = _design(dims, powers) / values[:, None]
    # Columns scaled to unit maximum: D³ spans ~10 decades more than 1, which nnls handles badly.
    scale = np.abs(design).max(axis=0)
    scale[scale == 0] = 1.0
    coef, _ = nnls(design / scale, np.ones_like(values), maxiter=50 * design.shape[1])
    return coef / scale


def point_fit(dims: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray) -> np.ndarray:
    """The fitted (t0, a, c) alone, without bootstrap (inputs as for :func:`fit_cost_model`)."""
    return _nnls_relative(*check_points(dims, values, min_dims=MIN_DISTINCT_DIMS))


def _residuals(dims: np.ndarray, values: np.ndarray, powers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fitted values and leverage-adjusted log residuals ``log(t/t̂)/√(1−h)``, centred on their median.

    On the log scale a resampled residual always gives a positive time (``t̂·exp(r)``), however large;
    to first order it is the relative error the fit minimises. The median, not the mean, centres them:
    a timing taken while another job held the cores (50× slow) barely moves the relative-error fit,
    but its log residual would shift the mean, and with it every resample, away from the fit.

    ``h`` is the hat-matrix diagonal of the weighted design, so that the residuals have the noise's
    variance (Davison & Hinkley, 1997, §6.2) before they are resampled.
    """
    coef = _nnls_relative(dims, values, powers)
    design = _design(dims, powers) / values[:, None]
    q, _ = np.linalg.qr(design / np.abs(design).max(axis=0))
    lev = np.clip((q**2).sum(axis=1), 0.0, 0.9)  # capped: √(1−h) ≥ 0.32
    fitted = _design(dims, powers) @ coef
    resid = np.log(values / np.maximum(fitted, 1e-300)) / np.sqrt(1.0 - lev)
    return fitted, resid - np.median(resid)


def _rss(dims: np.ndarray, values: np.ndarray, powers: np.ndarray) -> float:
    coef = _nnls_relative(dims, values, powers)
    return float((((_design(dims, powers) @ coef) / values - 1.0) ** 2).sum())


def _f_stat(dims: np.ndarray, values: np.ndarray) -> float:
    """RSS₀ − RSS₁: the drop in relative RSS from ``t0 + a·D²`` to ``t0 + a·D² + c·D³``.

    Not divided by RSS₁: resamples whose residuals nearly coincide fit both models almost exactly,
    and a ratio of two near-zero sums would then be arbitrary."""
    return _rss(dims, values, _POWERS[:2]) - _rss(dims, values, _POWERS)


def c_pvalue(dims: np.ndarray, values: np.ndarray, *, n_boot: int, rng: np.random.Generator) -> float:
    """Bootstrap test of ``c = 0`` against ``c > 0`` with the statistic of :func:`_f_stat`.

    Its null distribution: data simulated from the quadratic fit ``t0 + a·D²`` with the residuals of
    the *full* model resampled onto it (Davison & Hinkley, 1997, §6.3: residuals of the null fit carry
    its lack of fit and would inflate the simulated noise, costing power). A test under the null, unlike
    an interval of a coefficient held at the boundary c ≥ 0, keeps the rate of false "cubic" calls on
    pure a·D² + t0 data at its level.
    """
    observed = _f_stat(dims, values)
    if not observed > 0:
        return 1.0
    null_fit = _design(dims, _POWERS[:2]) @ _nnls_relative(dims, values, _POWERS[:2])
    _, resid = _residuals(dims, values, _POWERS)
    draws = resid[rng.integers(0, dims.size, size=(n_boot, dims.size))]
    exceed = sum(_f_stat(dims, null_fit * np.exp(r)) >= observed for r in draws)
    return (exceed + 1) / (n_boot + 1)


def half_dim(t0: float, a: float, c: float) -> float:
    """The D > 0 where ``c·D³ = t0 + a·D²`` (the D³ term is half the step from there on); inf if c = 0.

    ``c·D³ − a·D² − t0`` has one sign change, so (Descartes) exactly one positive root when c > 0.
    """
    if not c > 0:
        return float("inf")
    if t0 <= 0 and a <= 0:
        return 0.0
    roots = np.roots([c, -a, 0.0, -t0])
    real = roots[(np.abs(roots.imag) <= 1e-9 * np.abs(roots).max()) & (roots.real > 0)].real
    return float(real.max()) if real.size else float("inf")


def percentile_interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval without interpolation (samples may contain inf)."""
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail], method="inverted_cdf")
    return float(low), float(high)


@dataclass(frozen=True)
class CostFit:
    """A fitted cost model ``t(D) = t0 + a·D² + c·D³`` and its bootstrap.

    ``boot`` holds one (t0, a, c) row per valid resample; all intervals are percentiles over it.
    """

    t0: float
    a: float
    c: float
    dims: tuple[float, ...]  # distinct measured D, ascending
    n_points: int
    boot: np.ndarray = field(repr=False)
    level: float = DEFAULT_LEVEL
    #: D³ share at the second-largest D of the fit without the largest D (None: < 3 D would remain).
    top_out_share: float | None = None
    #: p-value of the test of c = 0 on the points below the largest D: reported, not a condition (one
    #: point fewer costs much power: real 2-core timings of ordinary, 56% D³ share there, gave p = 0.23).
    top_out_p: float = 1.0
    #: p-value of the bootstrap test of c = 0 against c > 0 (:func:`c_pvalue`).
    p_c: float = 1.0
    #: The quadratic model t0 + a·D² (c = 0) and its bootstrap: what predictions use when the order
    #: is quadratic, so that a D³ term the order rule rejected is not extrapolated.
    quad_coef: np.ndarray = field(default_factory=lambda: np.zeros(3), repr=False)
    quad_boot: np.ndarray = field(default_factory=lambda: np.zeros((1, 3)), repr=False)
    #: The order whose model predictions and figures use, when another source decides it (the order from
    #: counted work: a timed D³ term that the count shows is a hardware regime change is not extrapolated,
    #: and D³ work the timings cannot resolve yet is); None: the timed order (:attr:`order`).
    model_order: str | None = None

    @property
    def coef(self) -> np.ndarray:
        return np.array([self.t0, self.a, self.c])

    @property
    def max_dim(self) -> float:
        return self.dims[-1]

    def predict(self, dims: Sequence[float] | np.ndarray) -> np.ndarray:
        """Fitted step cost at ``dims`` (the full three-term model)."""
        return _design(np.asarray(dims, dtype=float).ravel()) @ self.coef

    @property
    def accepted_order(self) -> str:
        """The order whose model predictions use: :attr:`model_order` when set, else the timed order."""
        return self.model_order or self.order

    @property
    def model_coef(self) -> np.ndarray:
        """Coefficients of the model the order accepts: all three if cubic, else t0 + a·D²."""
        return self.coef if self.accepted_order == ORDER_CUBIC else self.quad_coef

    @property
    def model_boot(self) -> np.ndarray:
        return self.boot if self.accepted_order == ORDER_CUBIC else self.quad_boot

    def predict_model(self, dims: Sequence[float] | np.ndarray) -> np.ndarray:
        """Step cost at ``dims`` under the model the order accepts (what predictions use)."""
        return _design(np.asarray(dims, dtype=float).ravel()) @ self.model_coef

    def predict_boot(self, dims: Sequence[float] | np.ndarray) -> np.ndarray:
        """Bootstrap predictions of the accepted model: one row per resample, one column per D."""
        return self.model_boot @ _design(np.asarray(dims, dtype=float).ravel()).T

    def predict_interval(self, dims: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval of the accepted model's prediction at each D."""
        boot = self.predict_boot(dims)
        bounds = np.array([percentile_interval(boot[:, j], self.level) for j in range(boot.shape[1])])
        return bounds[:, 0], bounds[:, 1]

    def interval(self, name: str) -> tuple[float, float]:
        """Percentile interval of ``t0``, ``a`` or ``c``."""
        return percentile_interval(self.boot[:, ("t0", "a", "c").index(name)], self.level)

    def share(self, dims: Sequence[float] | np.ndarray) -> np.ndarray:
        """D³ share of the fitted step, ``c·D³ / t(D)``."""
        d = np.asarray(dims, dtype=float).ravel()
        total = self.predict(d)
        return np.where(total > 0, self.c * d**3 / np.where(total > 0, total, 1.0), 0.0)

    def share_interval(self, dim: float) -> tuple[float, float]:
        """Percentile interval of the D³ share at ``dim``."""
        boot = (self.boot @ _design(np.array([float(dim)])).T)[:, 0]
        shares = np.where(boot > 0, self.boot[:, 2] * dim**3 / np.where(boot > 0, boot, 1.0), 0.0)
        return percentile_interval(shares, self.level)

    @property
    def half_dim(self) -> float:
        return half_dim(self.t0, self.a, self.c)

    def half_dim_interval(self) -> tuple[float, float]:
        return percentile_interval(np.array([half_dim(*row) for row in self.boot]), self.level)

    @property
    def order(self) -> str:
        """``cubic`` or ``quadratic`` by the rule of :func:`order_rule`."""
        return ORDER_QUADRATIC if self.order_reason else ORDER_CUBIC

    @property
    def order_reason(self) -> str:
        """Why the D³ term does not count ("" when the order is cubic), naming the failed condition."""
        c_low, _ = self.interval("c")
        share = float(self.share([self.max_dim])[0])
        if not (self.p_c < TEST_LEVEL and c_low > 0):
            return f"c not significant (test p = {self.p_c:.2g}, interval low {c_low:.2g})"
        if share < CUBIC_SHARE_MIN:
            return f"D³ share {share:.0%} < {CUBIC_SHARE_MIN:.0%} at D = {self.max_dim:g}"
        # A D³ term seen at the largest D alone may be a cache or bandwidth cliff, not O(D³) work.
        top = self.top_out_share if self.top_out_share is not None else 0.0
        if top < CUBIC_SHARE_MIN / 2:
            return (
                f"D³ term carried by D = {self.max_dim:g} alone (without it: share "
                f"{top:.0%}, test p = {self.top_out_p:.2g})"
            )
        return ""


def check_points(
    dims: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    *,
    min_dims: int = ORDER_MIN_DIMS,
    fitting: str = "a cost model",
) -> tuple[np.ndarray, np.ndarray]:
    """``(dims, values)`` as flat float arrays; :class:`ReportError` naming the problem if they cannot carry
    ``fitting`` (``min_dims`` distinct D: 4 to fit and order a cost model, 3 for the fit alone)."""
    d = np.asarray(dims, dtype=float).ravel()
    v = np.asarray(values, dtype=float).ravel()
    if d.shape != v.shape:
        raise ReportError(f"dims and values differ in length: {d.size} vs {v.size}")
    if d.size == 0 or not np.isfinite(v).any():
        raise ReportError("no finite timing to fit (all values missing or NaN)")
    if not (np.all(np.isfinite(d)) and np.all(np.isfinite(v))):
        raise ReportError(f"dims and values must be finite to fit {fitting}")
    if np.any(d <= 0) or np.any(v <= 0):
        raise ReportError(f"dims and values must be positive to fit {fitting}")
    distinct = np.unique(d)
    if len(distinct) < min_dims:
        why = " and test c with and without the largest D" if min_dims > MIN_DISTINCT_DIMS else ""
        raise ReportError(
            f"need at least {min_dims} distinct D to fit t0 + a·D² + c·D³{why}, got "
            f"{len(distinct)}: {[int(x) if x.is_integer() else x for x in distinct.tolist()]}"
        )
    return d, v


def fit_cost_model(
    dims: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    *,
    n_boot: int = DEFAULT_BOOT,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> CostFit:
    """Fit ``values ≈ t0 + a·D² + c·D³`` (coefficients ≥ 0, relative error) with a residual bootstrap.

    The intervals resample the fit's leverage-adjusted log residuals onto the fitted curve (every D stays
    in every resample); the same resamples under ``t0 + a·D²`` give the quadratic model's, and the test
    of c (:func:`c_pvalue`) and the fit without the largest D decide the order (module docstring).

    Args:
        dims, values: one point per measurement (repeated D allowed: seeds).
        n_boot: bootstrap resamples (at least 100) of the intervals, and of each test of c.
        level: coverage of the percentile intervals.
        seed: seed of the bootstrap, so that reports are reproducible.

    Raises:
        ReportError: mismatched lengths, missing/non-positive values, fewer than four distinct D (three
            fix t0, a and c exactly and leave no residual to test c against), or bad ``n_boot``/``level``.
    """
    d, v = check_points(dims, values)
    check_bootstrap(n_boot, level)
    coef = _nnls_relative(d, v)
    rng = np.random.default_rng(seed)
    fitted, resid = _residuals(d, v, _POWERS)
    draws = resid[rng.integers(0, d.size, size=(n_boot, d.size))]
    boot = np.array([_nnls_relative(d, fitted * np.exp(r)) for r in draws])
    p_c = c_pvalue(d, v, n_boot=n_boot, rng=rng) if coef[2] > 0 else 1.0
    quad_fitted, quad_resid = _residuals(d, v, _POWERS[:2])
    quad_draws = quad_resid[rng.integers(0, d.size, size=(n_boot, d.size))]
    quad_boot = np.array(
        [[*_nnls_relative(d, quad_fitted * np.exp(r), _POWERS[:2]), 0.0] for r in quad_draws]
    )
    top_out: float | None = None
    top_out_p = 1.0
    below = d < d.max()
    if np.unique(d[below]).size >= MIN_DISTINCT_DIMS:
        sub = _nnls_relative(d[below], v[below])
        second = d[below].max()
        top_out = float(sub[2] * second**3 / (_design(np.array([second])) @ sub)[0])
        if below.sum() > MIN_DISTINCT_DIMS and sub[2] > 0:
            top_out_p = c_pvalue(d[below], v[below], n_boot=n_boot, rng=rng)
    return CostFit(
        quad_coef=np.array([*_nnls_relative(d, v, _POWERS[:2]), 0.0]),
        quad_boot=quad_boot,
        top_out_p=top_out_p,
        top_out_share=top_out,
        p_c=p_c,
        t0=float(coef[0]),
        a=float(coef[1]),
        c=float(coef[2]),
        dims=tuple(float(x) for x in np.unique(d)),
        n_points=int(d.size),
        boot=boot,
        level=level,
    )
