"""sklearn's 8×8 handwritten digits (1797 images, 64 pixels with values 0..16), in logit space.

The images ship inside the scikit-learn wheel, so this is the one real image set that needs no
download. Preprocessing follows the MAF treatment of MNIST (Papamakarios et al. 2017) with 17
grey levels instead of 256: uniform dequantisation ``x = (v + u)/17``, then
``y = logit(λ + (1 − 2λ)x)`` with λ = 1e-6, then (by default) per-pixel standardisation
``(y − μ)/s`` with the *training* mean and sd.

Why standardise: the logit pixels are neither centred nor scaled (means −3.8…+1.6, sds 0.9…2.9), and
a flow with orthogonal init, zero bias and a standard-normal base then stalls on a plateau that early
stopping mistakes for the optimum (half the gain over a Gaussian that the same model reaches on
standardised pixels).

Reported space: logit space, as MAF and the relative-gradient paper report image sets. A flow trained on
the standardised tensors has ``LL_logit = LL_tensors − Σ log s``; that constant is ``Dataset.ll_offset``
(``data.reported_ll(−evaluate_nll(flow, data.test))``). From logit space on, use
:func:`relgrad_core.data.transforms.logit_to_unit_log_prob` for ``[0, 1]^64``.
"""

from __future__ import annotations

import numpy as np
import torch

from relgrad_core.checks import check_dtype, check_flag, check_open_interval, check_positive_int, check_seed
from relgrad_core.data._arrays import Standardization
from relgrad_core.data._split import cap_splits, shuffled_split, split_counts, to_tensor
from relgrad_core.data.dataset import Dataset
from relgrad_core.data.transforms import check_lam, dequantise_logit

DIGITS_LEVELS = 17  # pixel values 0..16


def load_digits(
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    val_frac: float = 0.15,
    test_frac: float = 0.15,
    lam: float = 1e-6,
    max_rows: int | None = None,
    standardize: bool = True,
) -> Dataset:
    """Seeded shuffle, split (default 70/15/15), dequantise, logit and standardise the sklearn digits.

    Args:
        seed: drives both the shuffle and the dequantisation noise.
        val_frac, test_frac: fractions of the 1797 images in the validation and test splits.
        lam: λ of the logit transform (MAF uses 1e-6).
        max_rows: keep at most this many rows per split (seeded subset, after standardisation), for
            quick runs.
        standardize: map every split by ``(y − μ)/s`` with the training split's per-pixel mean and
            (population) sd; ``ll_offset = −Σ log s`` keeps reported LLs in logit space.
    """
    name = "digits"
    check_seed(seed)
    check_dtype(dtype)
    val_frac = check_open_interval("val_frac", val_frac, 0.0, 1.0, where=name)
    test_frac = check_open_interval("test_frac", test_frac, 0.0, 1.0, where=name)
    lam = check_lam(lam, where=name)
    max_rows = check_positive_int("max_rows", max_rows, allow_none=True, where=name)
    check_flag("standardize", standardize, where=name)

    from sklearn.datasets import load_digits as sklearn_digits

    pixels = np.asarray(sklearn_digits().data, dtype=np.float64)
    if pixels.min() < 0 or pixels.max() > DIGITS_LEVELS - 1:
        raise ValueError(f"{name}: sklearn returned pixels outside 0..{DIGITS_LEVELS - 1}")

    rng = np.random.default_rng(seed)
    counts = split_counts(len(pixels), val_frac, test_frac, dataset=name)
    splits = shuffled_split(pixels, counts, rng)
    train, val, test = (dequantise_logit(s, levels=DIGITS_LEVELS, lam=lam, rng=rng) for s in splits)
    transform = f"dequantise (v + u)/{DIGITS_LEVELS}, logit(λ + (1 − 2λ)x) with λ={lam:g}"
    extra: dict[str, object] = {}
    ll_offset = 0.0
    if standardize:
        scaler = Standardization.fit(train, name=name)
        train, val, test = scaler.apply(train), scaler.apply(val), scaler.apply(test)
        transform += ", standardise (training mean and sd per pixel)"
        extra["standardization"] = scaler.as_info()
        ll_offset = scaler.log_abs_det
    tensors = (to_tensor(train, dtype), to_tensor(val, dtype), to_tensor(test, dtype))
    train_t, val_t, test_t = cap_splits(tensors, max_rows, seed)
    dim = pixels.shape[1]
    return Dataset(
        name=name,
        train=train_t,
        val=val_t,
        test=test_t,
        transform=transform,
        info={
            "source": "sklearn.datasets.load_digits",
            "image_shape": (8, 8),
            "levels": DIGITS_LEVELS,
            "lam": lam,
            "split": {"train": len(train_t), "val": len(val_t), "test": len(test_t)},
            "seed": seed,
            "max_rows": max_rows,
            **extra,
            # What a user needs to leave logit space: log p_x = log p_y + logit_log_det(y, lam) with y
            # the logit values (undo the standardisation first), then −dim·log(levels) for 0..16 values.
            "to_unit_space": "relgrad_core.data.logit_to_unit_log_prob(log_prob, y, lam)",
            "unit_to_levels_log_det": -dim * float(np.log(DIGITS_LEVELS)),
        },
        ll_space=f"logit space (λ={lam:g})",
        ll_offset=ll_offset,
    )
