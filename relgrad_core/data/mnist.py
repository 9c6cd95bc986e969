"""MNIST from the original IDX files, dequantised and in logit space (MAF ``datasets/mnist.py``).

``mnist/train-images-idx3-ubyte`` and ``mnist/t10k-images-idx3-ubyte`` (each plain or ``.gz``)
→ the first 50 000 training images are train, the last 10 000 validation (the split of the
``mnist.pkl.gz`` that MAF reads), the 10 000 t10k images test → uniform dequantisation
``x = (v + u)/256`` → ``y = logit(λ + (1 − 2λ)x)`` with λ = 1e-6. Log-likelihoods are in logit
space, which is how MAF and the relative-gradient paper report MNIST; see
:mod:`relgrad_core.data.transforms` for the conversion to pixel space and bits per dimension.

The IDX format (LeCun et al.): a big-endian header ``0x00 0x00 <type> <ndim>``, then ``ndim``
big-endian uint32 sizes, then the raw values; images have type 0x08 (unsigned byte), ndim 3.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

from relgrad_core.checks import check_dtype, check_positive_int, check_seed
from relgrad_core.data._files import find_file, resolve_root
from relgrad_core.data._split import cap_splits
from relgrad_core.data.dataset import Dataset
from relgrad_core.data.transforms import check_lam, dequantise_logit

IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions (count, rows, cols)
MNIST_LEVELS = 256
TRAIN_FILE = "mnist/train-images-idx3-ubyte"
TEST_FILE = "mnist/t10k-images-idx3-ubyte"
ROWS_PER_CHUNK = 10000  # the float64 intermediate of one chunk stays small


def read_idx_images(path: str | os.PathLike[str]) -> np.ndarray:
    """Parse an IDX image file (plain or gzip) into a ``uint8`` array ``(count, rows, cols)``."""
    path = Path(path)
    with open(path, "rb") as handle:
        is_gzip = handle.read(2) == b"\x1f\x8b"
    try:
        raw = gzip.decompress(path.read_bytes()) if is_gzip else path.read_bytes()
    except (OSError, EOFError) as err:
        raise ValueError(f"'{path}' is not a readable gzip file ({err})") from err
    if len(raw) < 16:
        raise ValueError(f"'{path}' is too short ({len(raw)} bytes) for an IDX image header")
    magic = int.from_bytes(raw[:4], "big")
    if magic != IDX_IMAGES_MAGIC:
        raise ValueError(
            f"'{path}' has IDX magic number 0x{magic:08x}, expected 0x{IDX_IMAGES_MAGIC:08x} "
            f"(unsigned-byte images with 3 dimensions); is it a label file or another format?"
        )
    count, rows, cols = (int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(3))
    expected = 16 + count * rows * cols
    if len(raw) != expected:
        raise ValueError(
            f"'{path}' declares {count} images of {rows}×{cols} ({expected} bytes with header) "
            f"but has {len(raw)} bytes; the file is truncated or corrupt"
        )
    if count == 0 or rows == 0 or cols == 0:
        raise ValueError(f"'{path}' holds no pixels (shape {count}×{rows}×{cols})")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(count, rows, cols)


def _to_logit_tensor(
    images: np.ndarray, *, lam: float, rng: np.random.Generator, dtype: torch.dtype
) -> torch.Tensor:
    """Flatten, dequantise and logit ``images`` chunk by chunk (60k×784 float64 would be 376 MB)."""
    flat = images.reshape(images.shape[0], -1)
    out = torch.empty(flat.shape, dtype=dtype)
    for start in range(0, flat.shape[0], ROWS_PER_CHUNK):
        chunk = flat[start : start + ROWS_PER_CHUNK]
        y = dequantise_logit(chunk, levels=MNIST_LEVELS, lam=lam, rng=rng)
        out[start : start + len(chunk)] = torch.from_numpy(y).to(dtype)
    return out


def load_mnist(
    *,
    root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    n_val: int = 10000,
    lam: float = 1e-6,
    max_rows: int | None = None,
) -> Dataset:
    """Read the IDX files under ``root`` and return the 50k/10k/10k logit-space splits.

    Args:
        seed: seeds the dequantisation noise (MAF used ``RandomState(42)``) and ``max_rows``.
        n_val: the last ``n_val`` training images form the validation split.
        lam: λ of the logit transform.
        max_rows: keep at most this many rows per split (seeded subset), for quick runs.
    """
    name = "mnist"
    check_seed(seed)
    check_dtype(dtype)
    check_positive_int("n_val", n_val, where=name)
    lam = check_lam(lam, where=name)
    max_rows = check_positive_int("max_rows", max_rows, allow_none=True, where=name)

    data_root = resolve_root(root)
    train_path = find_file(name, data_root, TRAIN_FILE, TRAIN_FILE + ".gz")
    test_path = find_file(name, data_root, TEST_FILE, TEST_FILE + ".gz")
    train_images = read_idx_images(train_path)
    test_images = read_idx_images(test_path)
    if train_images.shape[1:] != test_images.shape[1:]:
        raise ValueError(
            f"{name}: train images are {train_images.shape[1:]} but test images are {test_images.shape[1:]}"
        )
    if train_images.shape[0] <= n_val:
        raise ValueError(
            f"{name}: n_val={n_val} leaves no training images out of "
            f"{train_images.shape[0]} in '{train_path}'"
        )

    rng = np.random.default_rng(seed)
    n_train = train_images.shape[0] - n_val
    train = _to_logit_tensor(train_images[:n_train], lam=lam, rng=rng, dtype=dtype)
    val = _to_logit_tensor(train_images[n_train:], lam=lam, rng=rng, dtype=dtype)
    test = _to_logit_tensor(test_images, lam=lam, rng=rng, dtype=dtype)
    train, val, test = cap_splits((train, val, test), max_rows, seed)
    dim = train.shape[1]
    return Dataset(
        name=name,
        train=train,
        val=val,
        test=test,
        transform=f"dequantise (v + u)/{MNIST_LEVELS}, logit(λ + (1 − 2λ)x) with λ={lam:g}",
        info={
            "source": [str(train_path), str(test_path)],
            "image_shape": tuple(int(s) for s in train_images.shape[1:]),
            "levels": MNIST_LEVELS,
            "lam": lam,
            "seed": seed,
            "max_rows": max_rows,
            "split": {"train": len(train), "val": len(val), "test": len(test)},
            "to_unit_space": "relgrad_core.data.logit_to_unit_log_prob(log_prob, y, lam)",
            "unit_to_levels_log_det": -dim * float(np.log(MNIST_LEVELS)),
        },
        ll_space=f"logit space (λ={lam:g})",
    )
