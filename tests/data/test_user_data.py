"""Your own data: Dataset validation, Dataset.from_arrays, load_data_file and register_dataset."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from relgrad_core import (
    DATASETS,
    Dataset,
    evaluate_nll,
    fit,
    load_data_file,
    load_dataset,
    make_flow,
    register_dataset,
)
from relgrad_core.data import dataset_names, unregister_dataset


def _table(rows: int = 200, dim: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, dim)) * np.array([1.0, 10.0, 0.1])[:dim] + 5.0


# --- Dataset(...) validates at construction ---------------------------------------------------------
@pytest.mark.parametrize(
    ("train", "message"),
    [
        (torch.tensor([[0.0, float("nan")]]), "train split has 1 non-finite"),
        (torch.zeros(0, 2), "train split is empty"),
        (torch.zeros(4), "train split must be 2-D"),
        (torch.zeros(3, 2, dtype=torch.int64), "floating-point"),
        (np.zeros((3, 2)), "Dataset.from_arrays"),
        (torch.zeros(3, 5), "disagree in dimension"),
    ],
)
def test_dataset_validates_at_construction(train: object, message: str) -> None:
    good = torch.zeros(3, 2)
    with pytest.raises((TypeError, ValueError), match=message):
        Dataset("mine", train=train, val=good, test=good)  # type: ignore[arg-type]


# --- from_arrays --------------------------------------------------------------------------------------
def test_from_arrays_splits_standardises_and_records() -> None:
    x = _table()
    data = Dataset.from_arrays(x, seed=4)
    assert (len(data.train), len(data.val), len(data.test)) == (140, 30, 30)
    assert data.info["split"] == {"train": 140, "val": 30, "test": 30}
    assert "seed 4" in str(data.info["split_how"])
    assert data.train.dtype == torch.float32 and data.name == "custom"
    torch.testing.assert_close(data.train.mean(dim=0), torch.zeros(3), atol=1e-5, rtol=0)
    # the rows are a permutation of x: undo the standardisation and compare as sets
    stats = data.info["standardization"]
    restored = torch.cat([data.train, data.val, data.test]).double() * torch.tensor(
        stats["std"], dtype=torch.float64
    )
    restored += torch.tensor(stats["mean"], dtype=torch.float64)
    np.testing.assert_allclose(np.sort(restored.numpy(), axis=0), np.sort(x, axis=0), rtol=1e-5)
    assert data.ll_offset == pytest.approx(-np.log(stats["std"]).sum())
    assert data.ll_space.startswith("raw")
    # reproducible, and the seed matters
    assert torch.equal(Dataset.from_arrays(x, seed=4).test, data.test)
    assert not torch.equal(Dataset.from_arrays(x, seed=5).test, data.test)


def test_from_arrays_takes_tensors_ints_and_given_splits() -> None:
    x = torch.from_numpy(_table(50, 2))
    val = np.arange(20).reshape(10, 2)  # ints are numbers too
    data = Dataset.from_arrays(x, val=val, test=x[:5], standardize=False, name="given", dtype=torch.float64)
    assert (len(data.train), len(data.val), len(data.test)) == (50, 10, 5)
    assert data.ll_offset == 0.0 and data.transform == "none"
    torch.testing.assert_close(data.val, torch.from_numpy(val).double())
    carved = Dataset.from_arrays(x, val=val, test_fraction=0.2)  # only the test split is cut from x
    assert (len(carved.train), len(carved.val), len(carved.test)) == (40, 10, 10)


@pytest.mark.parametrize(
    ("x", "kwargs", "error", "message"),
    [
        (np.array([["a", "b"], ["c", "d"]]), {}, TypeError, "x has dtype <U1.*strings"),
        (np.array([[object()]] * 5), {}, TypeError, "dtype object: Python objects"),
        (np.ones((10, 2), dtype=bool), {}, TypeError, "booleans"),
        (np.arange(10.0), {}, ValueError, r"2-D.*reshape\(-1, 1\)"),
        (np.zeros((0, 3)), {}, ValueError, "empty"),
        (np.array([[1.0, np.nan]] * 10), {}, ValueError, "non-finite value.*row 0, column 1"),
        (np.ones((3, 2)), {}, ValueError, "at least 4 are needed"),
        (_table(20), {"val": np.zeros((4, 2))}, ValueError, "different widths"),
        (_table(20), {"val_fraction": 1.5}, ValueError, "val_fraction must lie strictly between 0 and 1"),
        (np.ones((20, 2)), {}, ValueError, "constant in the training rows"),
        ("data.csv", {}, TypeError, "numpy array or a torch tensor"),
    ],
)
def test_from_arrays_refuses_bad_input_naming_the_problem(
    x: object, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Dataset.from_arrays(x, **kwargs)  # type: ignore[arg-type]


def test_from_arrays_then_fit_end_to_end() -> None:
    data = Dataset.from_arrays(_table(300, 3))
    flow = make_flow("relative", data.dim, 2, seed=0, device="cpu")
    before = -evaluate_nll(flow, data.test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit(flow, data, method="relative", lr=1e-2, batch_size=32, epochs=20, patience=None, seed=0)
    after = -evaluate_nll(flow, data.test)
    assert after > before + 0.5  # it learned something
    assert data.reported_ll(after) == pytest.approx(after + data.ll_offset)


# --- load_data_file -----------------------------------------------------------------------------------
def test_npy_npz_and_csv_give_the_same_dataset(tmp_path: Path) -> None:
    x = _table(60, 3)
    np.save(tmp_path / "mine.npy", x)
    np.savez(tmp_path / "one.npz", anything=x)
    np.savetxt(tmp_path / "plain.csv", x, delimiter=",")
    np.savetxt(tmp_path / "header.csv", x, delimiter=",", header="a,b,c", comments="")
    reference = Dataset.from_arrays(x, seed=2)
    for name in ("mine.npy", "one.npz", "plain.csv", "header.csv"):
        data = load_data_file(tmp_path / name, seed=2)
        assert data.name == Path(name).stem and data.info["source"] == str(tmp_path / name)
        for split in ("train", "val", "test"):
            torch.testing.assert_close(getattr(data, split), getattr(reference, split))


def test_npz_with_named_splits(tmp_path: Path) -> None:
    x = _table(60, 2)
    np.savez(tmp_path / "splits.npz", train=x[:40], val=x[40:50], test=x[50:])
    data = load_data_file(str(tmp_path / "splits.npz"), standardize=False)
    assert (len(data.train), len(data.val), len(data.test)) == (40, 10, 10)
    torch.testing.assert_close(data.test, torch.from_numpy(x[50:]).float())
    np.savez(tmp_path / "train_only.npz", train=x)
    assert len(load_data_file(tmp_path / "train_only.npz").val) == 9


def _write(tmp_path: Path, name: str, content: object) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    elif name.endswith(".npy"):
        np.save(path, content)
    elif name.endswith(".npz"):
        np.savez(path, **content)  # type: ignore[arg-type]
    return path


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.npy", None, "no such file"),
        ("data.txt", "1,2\n", "unknown extension '.txt'"),
        ("flat.npy", np.arange(10.0), "must be 2-D"),
        ("nan.npy", np.array([[1.0, np.nan]] * 10), "non-finite"),
        ("words.npy", np.array([["a", "b"]] * 10), "strings"),
        ("empty.npy", np.zeros((0, 3)), "empty"),
        ("one.npy", np.ones((1, 3)), "1 row"),
        ("garbage.npy", "not numpy", "not a readable .npy"),
        ("keys.npz", {"a": np.ones((5, 2)), "b": np.ones((5, 2))}, "expected 'train'"),
        ("widths.npz", {"train": np.ones((9, 2)), "val": np.ones((3, 3))}, "different widths"),
        ("cells.csv", "a,b\n1,2\n3,x\n", r"line 3, column 2 \('b'\): 'x' is not a number"),
        ("ragged.csv", "1,2\n3\n", "line 2 has 1 cells, expected 2"),
        ("empty.csv", "", "the file is empty"),
        ("header_only.csv", "a,b\n", "no data rows"),
        ("nan.csv", "1,2\n3,nan\n4,5\n6,7\n8,9\n", "line 2, column 2: .nan. is a missing value"),
    ],
)
def test_bad_files_give_one_line_naming_file_and_problem(
    tmp_path: Path, name: str, content: object, message: str
) -> None:
    path = tmp_path / name if content is None else _write(tmp_path, name, content)
    with pytest.raises(ValueError, match=message) as info:
        load_data_file(path)
    text = str(info.value)
    assert str(path) in text and "\n" not in text


# --- register_dataset ---------------------------------------------------------------------------------
def test_registered_loader_is_found_by_name_and_listed() -> None:
    calls: list[dict[str, object]] = []

    def loader(*, seed: int = 0, rows: int = 80) -> Dataset:
        calls.append({"seed": seed, "rows": rows})
        return Dataset.from_arrays(_table(rows, 2), seed=seed, name="mine", dtype=torch.float64)

    snapshot = tuple(DATASETS)
    register_dataset("mine", loader)
    try:
        assert "mine" in DATASETS and "mine" in dataset_names() and "mine" not in snapshot
        data = load_dataset("mine", seed=3, rows=40)
        assert calls == [{"seed": 3, "rows": 40}]
        assert data.train.dtype == torch.float32  # cast to the requested dtype, as built-ins are
        with pytest.raises(TypeError, match=r"does not take argument.*colour"):
            load_dataset("mine", colour=1)
        with pytest.raises(ValueError, match="already registered"):
            register_dataset("mine", loader)
    finally:
        unregister_dataset("mine")
    assert "mine" not in DATASETS


def test_register_refuses_builtin_names_and_bad_loaders() -> None:
    with pytest.raises(ValueError, match="'digits' is a built-in"):
        register_dataset("digits", lambda **_: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="callable"):
        register_dataset("thing", 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="non-empty str"):
        register_dataset(" padded ", lambda **_: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="built-in"):
        unregister_dataset("digits")


def test_a_loader_returning_something_else_is_named() -> None:
    register_dataset("broken", lambda *, seed=0: np.zeros((3, 2)))  # type: ignore[arg-type,return-value]
    try:
        with pytest.raises(TypeError, match="loader for 'broken' returned ndarray"):
            load_dataset("broken")
    finally:
        unregister_dataset("broken")
