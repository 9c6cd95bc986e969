"""sklearn's 8×8 handwritten digits (1797 images, 64 pixels with values 0..16), in logit space.

The images ship inside the scikit-learn wheel, so this is the one real image set that needs no
download. Preprocessing follows the MAF treatment of MNIST (Papamakarios et al. 2017) with 17
grey levels instead of 256: uniform dequantisation ``x = (v + u)/17``, then
``y = logit(λ + (1 − 2λ)x)`` with λ = 1e-6. Log-likelihoods are therefore in logit space; use
:func:`relgrad_core.data.transforms.logit_to_unit_log_prob` to report them in ``[0, 1]^64``.
"""

from __future__ import annotations

import numpy as np
import torch

from relgrad_core.data._checks import (
    check_dtype,
    check_fraction,
    check_logit_lambda,
    check_optional_positive_int,
    check_seed,
)
from relgrad_core.data._split import cap_splits, shuffled_split, split_counts, to_tensor
from relgrad_core.data.dataset import Dataset
from relgrad_core.data.transforms import dequantise_logit

DIGITS_LEVELS = 17  # pixel values 0..16


def load_digits(
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    val_frac: float = 0.15,
    test_frac: float = 0.15,
    lam: float = 1e-6,
    max_rows: int | None = None,
) -> Dataset:
    """Seeded shuffle, split (default 70/15/15), dequantise and logit the sklearn digits.

    Args:
        seed: drives both the shuffle and the dequantisation noise.
        val_frac, test_frac: fractions of the 1797 images in the validation and test splits.
        lam: λ of the logit transform (MAF uses 1e-6).
        max_rows: keep at most this many rows per split (seeded subset), for quick runs.
    """
    name = "digits"
    check_seed(seed)
    check_dtype(dtype)
    val_frac = check_fraction(val_frac, "val_frac", dataset=name)
    test_frac = check_fraction(test_frac, "test_frac", dataset=name)
    lam = check_logit_lambda(lam, dataset=name)
    max_rows = check_optional_positive_int(max_rows, "max_rows", dataset=name)

    from sklearn.datasets import load_digits as sklearn_digits

    pixels = np.asarray(sklearn_digits().data, dtype=np.float64)
    if pixels.min() < 0 or pixels.max() > DIGITS_LEVELS - 1:
        raise ValueError(f"{name}: sklearn returned pixels outside 0..{DIGITS_LEVELS - 1}")

    rng = np.random.default_rng(seed)
    counts = split_counts(len(pixels), val_frac, test_frac, dataset=name)
    splits = shuffled_split(pixels, counts, rng)
    train, val, test = (
        to_tensor(dequantise_logit(s, levels=DIGITS_LEVELS, lam=lam, rng=rng), dtype) for s in splits
    )
    train, val, test = cap_splits((train, val, test), max_rows, seed)
    dim = pixels.shape[1]
    return Dataset(
        name=name,
        train=train,
        val=val,
        test=test,
        transform=f"dequantise (v + u)/{DIGITS_LEVELS}, logit(λ + (1 − 2λ)x) with λ={lam:g}",
        info={
            "source": "sklearn.datasets.load_digits",
            "image_shape": (8, 8),
            "levels": DIGITS_LEVELS,
            "lam": lam,
            "split": {"train": len(train), "val": len(val), "test": len(test)},
            "seed": seed,
            # What a user needs to leave logit space: log p_x = log p_y + logit_log_det(y, lam),
            # then −dim·log(levels) for the density of the dequantised 0..16 values.
            "to_unit_space": "relgrad_core.data.logit_to_unit_log_prob(log_prob, y, lam)",
            "unit_to_levels_log_det": -dim * float(np.log(DIGITS_LEVELS)),
        },
    )
