"""MAF-preprocessed UCI sets on tiny fixture files written in the release formats."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from relgrad_core.data import load_dataset


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _concat(data) -> np.ndarray:
    return torch.cat([data.train, data.val, data.test]).numpy()


# ---------------------------------------------------------------- POWER
def _write_power(root: Path, n: int = 200) -> np.ndarray:
    raw = _rng(1).normal(size=(n, 8)) * np.arange(1, 9) + 10 * np.arange(8)
    (root / "power").mkdir(parents=True, exist_ok=True)
    np.save(root / "power" / "data.npy", raw)
    return raw


def test_power_follows_maf(tmp_path: Path) -> None:
    raw = _write_power(tmp_path, n=200)
    data = load_dataset("power", root=tmp_path, dtype=torch.float64)
    # 10% test, 10% of the remaining 180 as validation
    assert (len(data.train), len(data.val), len(data.test)) == (162, 18, 20)
    assert data.dim == 6
    train_val = torch.cat([data.train, data.val]).numpy()
    np.testing.assert_allclose(train_val.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(train_val.std(axis=0), 1.0, atol=1e-12)  # population std
    # Undo the normalisation: rows are the RandomState(42) shuffle, columns 1 and 3 are gone,
    # and each kept column carries uniform jitter below its MAF bound (time column: none).
    restored = _concat(data) * np.asarray(data.info["std"]) + np.asarray(data.info["mean"])
    expected = raw[np.random.RandomState(42).permutation(len(raw))][:, [0, 2, 4, 5, 6, 7]]
    jitter = restored - expected
    bounds = np.array([0.001, 0.01, 1.0, 1.0, 1.0, 0.0])
    assert (jitter >= -1e-9).all() and (jitter <= bounds + 1e-9).all()
    assert (jitter[:, :5].max(axis=0) > 0.5 * bounds[:5]).all()  # the jitter is really there


def test_power_wrong_column_count(tmp_path: Path) -> None:
    (tmp_path / "power").mkdir()
    np.save(tmp_path / "power" / "data.npy", np.zeros((50, 7)))
    with pytest.raises(ValueError, match="7 columns"):
        load_dataset("power", root=tmp_path)


def test_power_max_rows_is_seeded(tmp_path: Path) -> None:
    _write_power(tmp_path, n=300)
    full = load_dataset("power", root=tmp_path)
    a = load_dataset("power", root=tmp_path, max_rows=10, seed=4)
    b = load_dataset("power", root=tmp_path, max_rows=10, seed=4)
    c = load_dataset("power", root=tmp_path, max_rows=10, seed=5)
    assert (len(a.train), len(a.val), len(a.test)) == (10, 10, 10)
    assert torch.equal(a.train, b.train) and not torch.equal(a.train, c.train)
    # rows are a subset of the full split: normalisation is unchanged by max_rows
    matches = (a.train[:, None, :] == full.train[None, :, :]).all(dim=2).any(dim=1)
    assert matches.all()


# ---------------------------------------------------------------- GAS
def _gas_frame(n: int = 100) -> pd.DataFrame:
    rng = _rng(2)
    base = rng.normal(size=n)
    return pd.DataFrame(
        {
            "Time": np.arange(n, dtype=float),
            "Meth": rng.normal(size=n),
            "Eth": rng.normal(size=n),
            "s_a": base,  # near copy of s_b: MAF drops the first of the pair
            "s_b": 2.0 * base + 0.01 * rng.normal(size=n),
            "s_c": rng.normal(size=n),
            "s_d": rng.normal(size=n) * 5 + 3,
        }
    )


def _write_gas(root: Path, frame: object) -> None:
    (root / "gas").mkdir(parents=True, exist_ok=True)
    path = root / "gas" / "ethylene_CO.pickle"
    if isinstance(frame, pd.DataFrame):
        frame.to_pickle(path)
    else:
        path.write_bytes(pickle.dumps(frame))


def test_gas_drops_correlated_columns_and_normalises(tmp_path: Path) -> None:
    frame = _gas_frame(100)
    _write_gas(tmp_path, frame)
    data = load_dataset("gas", root=tmp_path, dtype=torch.float64)
    assert data.info["dropped_correlated"] == ["s_a"]
    assert data.info["columns"] == ["s_b", "s_c", "s_d"]
    assert (len(data.train), len(data.val), len(data.test)) == (81, 9, 10)
    everything = _concat(data)
    # whole-table standardisation with pandas' sample std, then the split keeps file order
    kept = frame[["s_b", "s_c", "s_d"]].to_numpy()
    np.testing.assert_allclose(everything, (kept - kept.mean(0)) / kept.std(0, ddof=1))


def test_gas_missing_columns_and_bad_pickle(tmp_path: Path) -> None:
    _write_gas(tmp_path, _gas_frame().drop(columns=["Eth"]))
    with pytest.raises(ValueError, match="Eth"):
        load_dataset("gas", root=tmp_path)
    _write_gas(tmp_path, [1, 2, 3])
    with pytest.raises(ValueError, match="expected a DataFrame"):
        load_dataset("gas", root=tmp_path)
    (tmp_path / "gas" / "ethylene_CO.pickle").write_bytes(b"definitely not a pickle")
    with pytest.raises(ValueError, match="not a readable pandas pickle"):
        load_dataset("gas", root=tmp_path)


def test_gas_constant_column(tmp_path: Path) -> None:
    frame = _gas_frame()
    frame["s_c"] = 1.0
    _write_gas(tmp_path, frame)
    with pytest.raises(ValueError, match="constant"):
        load_dataset("gas", root=tmp_path)


# ---------------------------------------------------------------- HEPMASS
FEATURES = ["f0", "f1", "f2", "f3"]


def _hepmass_frames(n_signal: int = 60) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = _rng(3)

    def block(n: int, label: float) -> pd.DataFrame:
        values = rng.normal(size=(n, len(FEATURES)))
        if label == 1.0:
            values[:6, 1] = -9.0  # smallest value of f1 occurs 6 times (> 5): dropped
            values[:5, 2] = -9.0  # 5 times: kept
            values[6:16, 3] = 0.5  # a repeated value that is not the minimum: kept (as in MAF)
        else:
            values += 1000.0  # background rows must not reach the statistics
        frame = pd.DataFrame(values, columns=FEATURES)
        frame.insert(0, "# label", label)
        return frame

    train = pd.concat([block(n_signal, 1.0), block(20, 0.0)]).sample(frac=1.0, random_state=0)
    test = pd.concat([block(15, 1.0), block(5, 0.0)])
    test["mass"] = 1000.0  # the extra trailing column of the release's test file
    return train, test


def _write_hepmass(root: Path, train: pd.DataFrame, test: pd.DataFrame) -> None:
    (root / "hepmass").mkdir(parents=True, exist_ok=True)
    train.to_csv(root / "hepmass" / "1000_train.csv", index=False)
    test.to_csv(root / "hepmass" / "1000_test.csv", index=False)


def test_hepmass_follows_maf(tmp_path: Path) -> None:
    train_frame, test_frame = _hepmass_frames(60)
    _write_hepmass(tmp_path, train_frame, test_frame)
    data = load_dataset("hepmass", root=tmp_path, dtype=torch.float64)
    assert data.info["removed_features"] == ["f1"]
    assert data.info["features"] == ["f0", "f2", "f3"]
    assert (len(data.train), len(data.val), len(data.test)) == (54, 6, 15)
    signal = train_frame[train_frame["# label"] == 1][["f0", "f2", "f3"]].to_numpy()
    mean, std = signal.mean(0), signal.std(0, ddof=1)
    train_val = torch.cat([data.train, data.val]).numpy()
    np.testing.assert_allclose(train_val, (signal - mean) / std)  # val = last 10%, file order
    test_signal = test_frame[test_frame["# label"] == 1][["f0", "f2", "f3"]].to_numpy()
    np.testing.assert_allclose(data.test.numpy(), (test_signal - mean) / std)


def test_hepmass_layout_mismatch(tmp_path: Path) -> None:
    train_frame, test_frame = _hepmass_frames()
    _write_hepmass(tmp_path, train_frame, test_frame.drop(columns=["mass"]))
    with pytest.raises(ValueError, match="one more column"):
        load_dataset("hepmass", root=tmp_path)


def test_hepmass_missing_test_file(tmp_path: Path) -> None:
    train_frame, test_frame = _hepmass_frames()
    _write_hepmass(tmp_path, train_frame, test_frame)
    (tmp_path / "hepmass" / "1000_test.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"1000_test\.csv"):
        load_dataset("hepmass", root=tmp_path)


def test_hepmass_non_numeric(tmp_path: Path) -> None:
    train_frame, test_frame = _hepmass_frames()
    train_frame["f0"] = "oops"
    _write_hepmass(tmp_path, train_frame, test_frame)
    with pytest.raises(ValueError, match="non-numeric"):
        load_dataset("hepmass", root=tmp_path)


# ---------------------------------------------------------------- MINIBOONE
def test_miniboone_split_and_normalisation(tmp_path: Path) -> None:
    raw = _rng(4).normal(size=(150, 5)) * 3 + 7
    (tmp_path / "miniboone").mkdir()
    np.save(tmp_path / "miniboone" / "data.npy", raw)
    data = load_dataset("miniboone", root=tmp_path, dtype=torch.float64)
    assert (len(data.train), len(data.val), len(data.test)) == (122, 13, 15)
    mean, std = raw[:135].mean(0), raw[:135].std(0)
    np.testing.assert_allclose(_concat(data), (raw - mean) / std)  # file order, train+val stats


def test_miniboone_nan_and_garbage(tmp_path: Path) -> None:
    (tmp_path / "miniboone").mkdir()
    raw = _rng(5).normal(size=(100, 3))
    raw[95, 1] = np.nan  # lands in the test split, which does not enter the statistics
    np.save(tmp_path / "miniboone" / "data.npy", raw)
    with pytest.raises(ValueError, match="test split has 1 non-finite"):
        load_dataset("miniboone", root=tmp_path)
    (tmp_path / "miniboone" / "data.npy").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"not a readable \.npy"):
        load_dataset("miniboone", root=tmp_path)
    np.save(tmp_path / "miniboone" / "data.npy", np.zeros(10))
    with pytest.raises(ValueError, match="2-D"):
        load_dataset("miniboone", root=tmp_path)


# ---------------------------------------------------------------- BSDS300
def test_bsds300_reads_the_three_splits(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    (tmp_path / "BSDS300").mkdir()
    parts = {
        k: _rng(i).normal(size=(n, 63)).astype(np.float32)
        for i, (k, n) in enumerate((("train", 30), ("validation", 8), ("test", 9)))
    }
    with h5py.File(tmp_path / "BSDS300" / "BSDS300.hdf5", "w") as f:
        for key, value in parts.items():
            f.create_dataset(key, data=value)
    data = load_dataset("bsds300", root=tmp_path)
    assert data.dim == 63 and data.train.dtype == torch.float32
    np.testing.assert_array_equal(data.val.numpy(), parts["validation"])
    np.testing.assert_array_equal(data.test.numpy(), parts["test"])


def test_bsds300_missing_split_and_not_hdf5(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    (tmp_path / "BSDS300").mkdir()
    path = tmp_path / "BSDS300" / "BSDS300.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("train", data=np.zeros((4, 63)))
    with pytest.raises(ValueError, match="validation"):
        load_dataset("bsds300", root=tmp_path)
    path.write_bytes(b"not hdf5 at all")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        load_dataset("bsds300", root=tmp_path)


# ---------------------------------------------------------------- where files are looked for
@pytest.mark.parametrize(
    ("name", "relative"),
    [
        ("power", "power/data.npy"),
        ("gas", "gas/ethylene_CO.pickle"),
        ("hepmass", "hepmass/1000_train.csv"),
        ("miniboone", "miniboone/data.npy"),
        ("bsds300", "BSDS300/BSDS300.hdf5"),
        ("mnist", "mnist/train-images-idx3-ubyte"),
    ],
)
def test_missing_file_message(tmp_path: Path, name: str, relative: str) -> None:
    with pytest.raises(FileNotFoundError) as info:
        load_dataset(name, root=tmp_path)
    message = str(info.value)
    assert f"'{relative}'" in message
    assert str(tmp_path / relative) in message  # the full expected path
    assert "root=" in message and "RELGRAD_DATA" in message


def test_env_var_and_argument_precedence(tmp_path: Path, monkeypatch) -> None:
    env_root, arg_root = tmp_path / "env", tmp_path / "arg"
    _write_power(env_root, n=100)
    monkeypatch.setenv("RELGRAD_DATA", str(env_root))
    assert load_dataset("power").info["source"] == str(env_root / "power" / "data.npy")
    with pytest.raises(FileNotFoundError, match="root= argument"):
        load_dataset("power", root=arg_root)
    monkeypatch.delenv("RELGRAD_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(FileNotFoundError, match=r"\.relgrad/data/power/data\.npy"):
        load_dataset("power")
