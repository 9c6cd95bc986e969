"""The load_dataset entry point: names, argument checking, output validation."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from relgrad_core.data import DATASETS, FILE_DATASETS, Dataset, dataset_options, load_dataset
from relgrad_core.data.registry import validate_dataset

EXPECTED = {
    "digits",
    "moons",
    "rings",
    "checkerboard",
    "sine",
    "trimodal",
    "2spirals",
    "8gaussians",
    "teacher",
    "noise",
    "power",
    "gas",
    "hepmass",
    "miniboone",
    "bsds300",
    "mnist",
}


def test_all_names_registered() -> None:
    assert set(DATASETS) == EXPECTED
    assert set(FILE_DATASETS) == {"power", "gas", "hepmass", "miniboone", "bsds300", "mnist"}


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'mooons'") as info:
        load_dataset("mooons")
    for name in DATASETS:
        assert name in str(info.value)


def test_unknown_option_is_named() -> None:
    with pytest.raises(TypeError, match="n_trian") as info:
        load_dataset("moons", n_trian=10)
    assert "n_train" in str(info.value)  # the accepted options are listed


def test_missing_required_option() -> None:
    with pytest.raises(TypeError, match=r"requires argument.*dim"):
        load_dataset("noise")


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_bad_seed(seed: object) -> None:
    with pytest.raises((TypeError, ValueError), match="seed"):
        load_dataset("moons", seed=seed, n_train=5, n_val=5, n_test=5)  # type: ignore[arg-type]


def test_bad_dtype() -> None:
    with pytest.raises(TypeError, match="dtype"):
        load_dataset("moons", dtype=torch.int64)


def test_root_is_ignored_by_generated_sets(tmp_path) -> None:
    a = load_dataset("sine", root=tmp_path / "absent", n_train=10, n_val=5, n_test=5)
    b = load_dataset("sine", n_train=10, n_val=5, n_test=5)
    torch.testing.assert_close(a.train, b.train, rtol=0, atol=0)


def test_dataset_options_reports_defaults() -> None:
    assert dataset_options("moons") == {"n_train": 10000, "n_val": 2000, "n_test": 2000, "noise": None}
    assert "max_rows" in dataset_options("power")
    assert "dim" in dataset_options("noise")


def _dataset(train: torch.Tensor, val: torch.Tensor | None = None) -> Dataset:
    good = torch.zeros(3, 2)
    return Dataset("fake", train=train, val=good if val is None else val, test=good)


@pytest.mark.parametrize(
    ("train", "val", "message"),
    [
        (torch.tensor([[0.0, float("nan")]]), None, "non-finite"),
        (torch.tensor([[0.0, float("inf")]]), None, "non-finite"),
        (torch.zeros(0, 2), None, "empty"),
        (torch.zeros(4), None, "2-D"),
        (torch.zeros(3, 2, dtype=torch.int64), None, "floating-point"),
        (torch.zeros(3, 2), torch.zeros(3, 5), "disagree in dimension"),
    ],
)
def test_validate_dataset_rejects_bad_splits(
    train: torch.Tensor, val: torch.Tensor | None, message: str
) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        validate_dataset(_dataset(train, val))


def test_teacher_is_reachable_through_registry() -> None:
    data = load_dataset("teacher", dim=3, n_train=20, n_val=10, n_test=10)
    assert data.dim == 3 and data.true_test_ll is not None


def test_import_needs_no_pandas_or_h5py() -> None:
    code = (
        "import sys, relgrad_core.data, relgrad_core\n"
        "bad = [m for m in ('pandas', 'h5py', 'matplotlib', 'mlflow') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
