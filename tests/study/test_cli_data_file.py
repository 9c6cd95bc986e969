"""``--data-file``: your own .npy/.npz/.csv through ``relgrad train`` and a sweep, D from the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from study.cli import main
from tests.study.conftest import runs_of

ROWS, DIM = 120, 3


def _data(seed: int = 0) -> np.ndarray:
    """Correlated Gaussian rows with a non-zero mean: what standardisation is for."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(ROWS, DIM)) @ np.array([[2.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.5]]) + 5.0


def _write(folder: Path, kind: str) -> Path:
    x = _data()
    if kind == "npy":
        path = folder / "mine.npy"
        np.save(path, x)
    elif kind == "npz":
        path = folder / "mine.npz"
        np.savez(path, train=x[:80], val=x[80:100], test=x[100:])
    else:
        path = folder / "mine.csv"
        lines = ["a,b,c", *(",".join(f"{v:.6f}" for v in row) for row in x)]
        path.write_text("\n".join(lines) + "\n")
    return path


def _train(store: dict[str, str], path: Path, name: str, *extra: str) -> list[str]:
    return [
        "train",
        "--data-file",
        str(path),
        "--name",
        name,
        "--tracking-uri",
        store["uri"],
        "--epochs",
        "2",
        "--steps-per-epoch",
        "3",
        "--batch-size",
        "16",
        "--device",
        "cpu",
        *extra,
    ]


@pytest.mark.parametrize("kind", ["npy", "npz", "csv"])
def test_train_on_a_data_file(kind: str, store: dict[str, str], tmp_path: Path) -> None:
    path = _write(tmp_path, kind)
    assert main(_train(store, path, f"mine-{kind}")) == 0
    [child] = [r for r in runs_of(store["uri"], f"mine-{kind}") if r.data.tags["role"] == "trial"]
    params = child.data.params
    assert child.data.tags["status"] == "ok"
    assert (params["dataset"], params["dim"], params["data.file"]) == ("file", str(DIM), str(path.resolve()))
    assert np.isfinite(child.data.metrics["test_ll"])


def test_data_file_with_set_override_and_relative_path(
    store: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, "npy")
    monkeypatch.chdir(tmp_path)  # a relative path is made absolute before the config stores it
    code = main(_train(store, Path("mine.npy"), "mine-set", "--set", "data.standardize=false"))
    assert code == 0
    [child] = [r for r in runs_of(store["uri"], "mine-set") if r.data.tags["role"] == "trial"]
    assert child.data.params["data.file"] == str(tmp_path / "mine.npy")
    assert child.data.params["data.standardize"] == "False"


@pytest.mark.parametrize("flag", [["--dataset", "digits"], ["--dim", "8"]])
def test_data_file_and_dataset_or_dim_conflict(
    flag: list[str], store: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "npy")
    assert main(_train(store, path, "clash", *flag)) == 2
    assert f"{flag[0]} and --data-file: give one" in capsys.readouterr().err
    assert runs_of(store["uri"], "clash") == []


def test_scaling_sweep_on_a_data_file(ray_session, store: dict[str, str], tmp_path: Path) -> None:
    path = _write(tmp_path, "csv")
    code = main(
        [
            "scaling",
            "--preset",
            "smoke",
            "--data-file",
            str(path),
            "--methods",
            "relative",
            "--name",
            "mine-sweep",
            "--tracking-uri",
            store["uri"],
            "--storage-path",
            store["storage"],
        ]
    )
    assert code == 0
    children = [r for r in runs_of(store["uri"], "mine-sweep") if r.data.tags["role"] == "trial"]
    assert [(r.data.params["dim"], r.data.tags["status"]) for r in children] == [(str(DIM), "ok")]
    assert children[0].data.params["data.file"] == str(path.resolve())
