"""MNIST from IDX files (plain and gzipped) written as tiny fixtures."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from relgrad_core.data import inverse_logit_transform, load_dataset
from relgrad_core.data.mnist import read_idx_images


def _idx_bytes(images: np.ndarray, magic: int = 0x00000803) -> bytes:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", s) for s in images.shape)
    return header + images.astype(np.uint8).tobytes()


def _write_mnist(
    root: Path, *, gz: bool, n_train: int = 12, n_test: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, size=(n_train, 4, 5), dtype=np.uint8)
    test = rng.integers(0, 256, size=(n_test, 4, 5), dtype=np.uint8)
    train[0, 0, 0], train[0, 0, 1] = 0, 255  # both ends of the pixel range
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for name, images in (("train-images-idx3-ubyte", train), ("t10k-images-idx3-ubyte", test)):
        payload = _idx_bytes(images)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(payload))
        else:
            (folder / name).write_bytes(payload)
    return train, test


@pytest.mark.parametrize("gz", [False, True])
def test_reads_splits_and_pixels(tmp_path: Path, gz: bool) -> None:
    train, test = _write_mnist(tmp_path, gz=gz)
    data = load_dataset("mnist", root=tmp_path, n_val=2, dtype=torch.float64)
    assert (data.train.shape, data.val.shape, data.test.shape) == ((10, 20), (2, 20), (3, 20))
    assert data.info["image_shape"] == (4, 5) and data.info["levels"] == 256
    # (v + u)/256 then logit: undoing the logit and flooring gives the pixels back, in order
    for split, images in ((data.train, train[:10]), (data.val, train[10:]), (data.test, test)):
        pixels = torch.floor(inverse_logit_transform(split, 1e-6) * 256).numpy()
        np.testing.assert_array_equal(pixels, images.reshape(len(images), -1))
    assert torch.isfinite(data.train).all()


def test_plain_and_gzip_agree_and_seeding(tmp_path: Path) -> None:
    _write_mnist(tmp_path / "plain", gz=False)
    _write_mnist(tmp_path / "gz", gz=True)
    a = load_dataset("mnist", root=tmp_path / "plain", n_val=2, seed=1)
    b = load_dataset("mnist", root=tmp_path / "gz", n_val=2, seed=1)
    c = load_dataset("mnist", root=tmp_path / "gz", n_val=2, seed=2)
    assert torch.equal(a.train, b.train) and torch.equal(a.test, b.test)
    assert not torch.equal(a.train, c.train)
    assert len(load_dataset("mnist", root=tmp_path / "gz", n_val=2, max_rows=4).train) == 4


def test_bad_magic_truncation_and_sizes(tmp_path: Path) -> None:
    path = tmp_path / "images"
    labels = np.zeros((3, 1, 1), dtype=np.uint8)
    path.write_bytes(_idx_bytes(labels, magic=0x00000801))
    with pytest.raises(ValueError, match="magic number 0x00000801"):
        read_idx_images(path)
    path.write_bytes(_idx_bytes(np.zeros((3, 2, 2), dtype=np.uint8))[:-1])
    with pytest.raises(ValueError, match="truncated"):
        read_idx_images(path)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="too short"):
        read_idx_images(path)
    path.write_bytes(b"\x1f\x8b" + b"broken gzip stream")
    with pytest.raises(ValueError, match="gzip"):
        read_idx_images(path)


def test_errors_from_load_dataset(tmp_path: Path) -> None:
    _write_mnist(tmp_path, gz=True)
    with pytest.raises(ValueError, match="n_val=12"):
        load_dataset("mnist", root=tmp_path, n_val=12)
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_dataset("mnist", root=tmp_path, n_val=2)
