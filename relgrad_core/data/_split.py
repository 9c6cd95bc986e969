"""Splitting, subsampling and numpy → torch conversion shared by the loaders."""

from __future__ import annotations

import numpy as np
import torch


def to_tensor(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """A contiguous CPU tensor of ``dtype`` that owns its memory (never a view of ``array``)."""
    return torch.from_numpy(np.ascontiguousarray(array)).to(dtype=dtype).clone()


def split_counts(n: int, val_frac: float, test_frac: float, *, dataset: str) -> tuple[int, int, int]:
    """Sizes ``(n_train, n_val, n_test)`` for ``n`` rows; every split must get at least one row."""
    n_test = round(test_frac * n)
    n_val = round(val_frac * n)
    n_train = n - n_val - n_test
    if min(n_train, n_val, n_test) < 1:
        raise ValueError(
            f"{dataset}: val_frac={val_frac}, test_frac={test_frac} of {n} rows leave an empty "
            f"split (train={n_train}, val={n_val}, test={n_test})"
        )
    return n_train, n_val, n_test


def shuffled_split(
    data: np.ndarray, counts: tuple[int, int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Permute the rows with ``rng`` and cut them into consecutive blocks of ``counts``."""
    n_train, n_val, _ = counts
    permuted = data[rng.permutation(len(data))]
    return (
        permuted[:n_train],
        permuted[n_train : n_train + n_val],
        permuted[n_train + n_val : sum(counts)],
    )


def maf_tail_split(data: np.ndarray, *, dataset: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The MAF convention (Papamakarios et al. 2017, ``datasets/{power,gas,miniboone}.py``).

    Test is the last ``int(0.1·N)`` rows; validation the last ``int(0.1·N')`` rows of the rest
    (``N'`` = what remains); train is everything before. No shuffling here: POWER shuffles earlier,
    GAS and MINIBOONE keep file order.
    """
    n_test = int(0.1 * data.shape[0])
    rest = data[: data.shape[0] - n_test]
    n_val = int(0.1 * rest.shape[0])
    train = rest[: rest.shape[0] - n_val]
    if min(len(train), n_val, n_test) < 1:
        raise ValueError(
            f"{dataset}: {data.shape[0]} rows are too few for the 10%/10% MAF split "
            f"(train={len(train)}, val={n_val}, test={n_test}); at least 20 rows are needed"
        )
    return train, rest[len(train) :], data[len(rest) :]


def cap_rows(tensor: torch.Tensor, max_rows: int | None, generator: torch.Generator) -> torch.Tensor:
    """At most ``max_rows`` rows of ``tensor``: a seeded random subset, kept in original order."""
    if max_rows is None or tensor.shape[0] <= max_rows:
        return tensor
    keep = torch.randperm(tensor.shape[0], generator=generator)[:max_rows].sort().values
    return tensor[keep].clone()


def cap_splits(
    splits: tuple[torch.Tensor, torch.Tensor, torch.Tensor], max_rows: int | None, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Apply :func:`cap_rows` to each split after preprocessing, so normalisation is unchanged."""
    if max_rows is None:
        return splits
    generator = torch.Generator().manual_seed(seed)
    train, val, test = (cap_rows(t, max_rows, generator) for t in splits)
    return train, val, test
