"""The container every loader returns, checked at construction, and :meth:`Dataset.from_arrays`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from relgrad_core.checks import check_dtype, check_flag, check_open_interval, check_seed, check_splits
from relgrad_core.data._arrays import Standardization, as_float_matrix, split_sizes
from relgrad_core.data._degenerate import check_not_degenerate

SPLITS = ("train", "val", "test")


@dataclass
class Dataset:
    """Train/validation/test splits of one density-estimation problem.

    Each split is a finite float tensor of shape ``(n, dim)`` (checked at construction); loaders return
    them on the CPU and :meth:`to` moves them.

    Log-likelihoods have two spaces. A flow is trained and evaluated on the tensors themselves
    (``evaluate_nll(flow, data.test)``); the *reported* space, named by ``ll_space``, is where this data
    set's LLs are quoted. The two differ by a constant log-Jacobian::

        LL in ll_space = LL on the tensors + ll_offset          (see :meth:`reported_ll`)

    For a set standardised with training statistics (``y = (x − μ)/s``) and reported before that step,
    ``ll_offset = −Σ_j log s_j`` (``info["standardization"]["log_abs_det"]``).

    Attributes:
        name: registry name (``"digits"``, ``"teacher"``, ...).
        train, val, test: the splits.
        transform: human-readable description of the preprocessing.
        true_log_prob: exact log-density of the data-generating process *on the tensors*, when known
            (``teacher``, some toy sets); maps ``(n, dim)`` to ``(n,)``.
        true_test_ll: mean of ``true_log_prob`` over the test split, when known (on the tensors).
        info: further metadata (source, seed, split sizes, ``standardization`` statistics, ...).
        ll_space: the space reported LLs are in (e.g. ``"logit space (λ=1e-06)"``).
        ll_offset: the constant taking an LL on the tensors to ``ll_space``.
    """

    name: str
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    transform: str = "none"
    true_log_prob: Callable[[torch.Tensor], torch.Tensor] | None = None
    true_test_ll: float | None = None
    info: dict[str, object] = field(default_factory=dict)
    ll_space: str = "the tensors as given"
    ll_offset: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"Dataset name must be a non-empty str, got {self.name!r}")
        check_splits(self.name, self.train, self.val, self.test)
        if isinstance(self.ll_offset, bool) or not np.isfinite(self.ll_offset):
            raise ValueError(f"{self.name}: ll_offset must be a finite number, got {self.ll_offset!r}")
        self.ll_offset = float(self.ll_offset)

    @property
    def dim(self) -> int:
        return int(self.train.shape[1])

    def reported_ll(self, ll: float) -> float:
        """An LL measured on the tensors (e.g. ``−evaluate_nll(flow, data.test)``) in :attr:`ll_space`."""
        return float(ll) + self.ll_offset

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Dataset:
        """Return a copy with every split moved to ``device``/``dtype``."""

        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device, dtype=dtype)

        return Dataset(
            name=self.name,
            train=move(self.train),
            val=move(self.val),
            test=move(self.test),
            transform=self.transform,
            true_log_prob=self.true_log_prob,
            true_test_ll=self.true_test_ll,
            info=dict(self.info),
            ll_space=self.ll_space,
            ll_offset=self.ll_offset,
        )

    @classmethod
    def from_arrays(
        cls,
        x: object,
        *,
        val: object = None,
        test: object = None,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        seed: int = 0,
        standardize: bool = True,
        name: str = "custom",
        dtype: torch.dtype = torch.float32,
    ) -> Dataset:
        """Your own data in one call: numpy arrays or tensors ``(n, dim)`` → a checked :class:`Dataset`.

        With neither ``val`` nor ``test``, the rows of ``x`` are shuffled with ``seed`` and cut into
        train/val/test by the two fractions; a split that is passed is used as is and only the missing ones
        are cut out of ``x``. With ``standardize`` (default) every split is mapped by ``(x − μ)/s`` with the
        *training* mean and (population) sd, and ``ll_offset = −Σ log s`` makes :meth:`reported_ll` give
        LLs in the space of the arrays as passed.

        The training rows must have a density (else a flow's likelihood grows without bound): at least
        ``dim + 1`` of them, no constant column (sd at most 1e-12 of the column's largest |value|: a
        rounding test, so that a column of 0.1 counts as constant) and no column that is a linear
        combination of others (duplicates included). These are refused, not dropped: the LL of the
        remaining columns would be a different quantity, so which columns to keep is the caller's call.

        Raises:
            TypeError: strings/objects/booleans/complex, or not an array at all.
            ValueError: not 2-D, empty, NaN/inf, widths that differ, too few rows, a constant or linearly
                dependent training column, values that overflow ``dtype``.
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        check_seed(seed)
        check_dtype(dtype)
        check_flag("standardize", standardize, where=name)
        given = {"val": val, "test": test}
        arrays = {
            split: as_float_matrix(value, f"{split} array", name=name)
            for split, value in given.items()
            if value is not None
        }
        missing = [split for split in ("val", "test") if split not in arrays]
        fractions = {"val": val_fraction, "test": test_fraction}
        # x keeps ≥ 2 training rows after the splits cut from it (a standard deviation needs 2)
        min_rows = 2 + len(missing)
        source = as_float_matrix(x, "x", name=name, min_rows=min_rows)
        rng = np.random.default_rng(seed)
        if missing:
            if len(missing) == 2:
                sizes = split_sizes(len(source), val_fraction, test_fraction, name=name)
            else:
                # one split carved out of x: its fraction is of x's rows
                only = missing[0]
                count = _carved_rows(len(source), fractions[only], only, name=name)
                sizes = (len(source) - count, count if only == "val" else 0, count if only == "test" else 0)
            order = rng.permutation(len(source))
            cuts = np.cumsum(sizes)[:-1]
            train, cut_val, cut_test = np.split(source[order], cuts)
            arrays.setdefault("val", cut_val)
            arrays.setdefault("test", cut_test)
            how = f"shuffled with seed {seed}; " + ", ".join(f"{s} = {fractions[s]:g} of x" for s in missing)
        else:
            train = source
            how = "as passed (x is train)"
        arrays["train"] = train
        widths = {split: arrays[split].shape[1] for split in SPLITS}
        if len(set(widths.values())) != 1:
            raise ValueError(f"{name}: the splits have different widths (columns): {widths}")
        info: dict[str, object] = {
            "source": "Dataset.from_arrays",
            "seed": seed,
            "split": {split: len(arrays[split]) for split in SPLITS},
            "split_how": how,
        }
        check_not_degenerate(arrays["train"], name=name)
        ll_offset = 0.0
        transform = "none"
        if standardize:
            scaler = Standardization.fit(arrays["train"], name=name)
            arrays = {split: scaler.apply(a) for split, a in arrays.items()}
            info["standardization"] = scaler.as_info()
            ll_offset = scaler.log_abs_det
            transform = "standardise with the training mean and sd"
        return cls(
            name=name,
            train=_tensor(arrays["train"], dtype, f"{name}: train split"),
            val=_tensor(arrays["val"], dtype, f"{name}: val split"),
            test=_tensor(arrays["test"], dtype, f"{name}: test split"),
            transform=transform,
            info=info,
            ll_space="raw (the arrays as passed)",
            ll_offset=ll_offset,
        )

    def __repr__(self) -> str:
        sizes = f"train={len(self.train)}, val={len(self.val)}, test={len(self.test)}"
        return f"Dataset({self.name!r}, dim={self.dim}, {sizes}, transform={self.transform!r})"


def _carved_rows(n: int, fraction: float, split: str, *, name: str) -> int:
    """Rows of ``x`` that become ``split`` (≥ 1), leaving at least 2 for training."""
    check_open_interval(f"{split}_fraction", fraction, 0.0, 1.0, where=name)
    count = max(1, round(fraction * n))
    if n - count < 2:
        raise ValueError(f"{name}: {n} rows of x are too few to cut a {split} split and keep 2 for training")
    return count


def _tensor(array: np.ndarray, dtype: torch.dtype, where: str) -> torch.Tensor:
    """``array`` as ``dtype``; a finite value beyond the dtype's range is named (it would become inf)."""
    largest = float(np.abs(array).max())
    limit = torch.finfo(dtype).max
    if largest > limit:
        row, column = (int(i) for i in np.argwhere(np.abs(array) > limit)[0])
        raise ValueError(
            f"{where} has values up to {largest:.3g}, beyond {dtype} (largest {limit:.3g}), first at row "
            f"{row}, column {column}; keep standardize=True or pass dtype=torch.float64"
        )
    return torch.from_numpy(np.ascontiguousarray(array)).to(dtype)
