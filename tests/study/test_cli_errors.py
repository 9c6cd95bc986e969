"""Bad input fails fast: exit code 2, one clear line, no trial and no run recorded."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from study.cli import main
from tests.study.conftest import runs_of


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scaling(store: dict[str, str], *extra: str) -> list[str]:
    return [
        "scaling",
        "--preset",
        "smoke",
        "--name",
        "bad",
        "--tracking-uri",
        store["uri"],
        "--storage-path",
        store["storage"],
        *extra,
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--methods", "relative,newton"], "--methods: unknown method 'newton' (choose from relative,"),
        (["--dataset", "imagenet"], "data.dataset must be 'teacher' or 'noise'"),
        (["--dims", "0,8"], "--dims: must be >= 1, got 0"),
        (["--dims", "64:32:x2"], "ends before it starts"),
        # --dims sets the preset's caps aside (jacobian ≤ 64 in quick): only a cap the user sets empties it
        (["--methods", "jacobian", "--dims", "4096", "--set", "max_dim.jacobian=64"], "grid is empty"),
        (["--cpus-per-trial", "0"], "--cpus-per-trial: must be > 0, got 0"),
        (["--preset", "nope"], "--preset nope: unknown preset 'nope' (choose from "),
        (["--preset", "nosuch.yaml"], "--preset nosuch.yaml: no such file"),
        (["--frobnicate"], "relgrad: error: unrecognized arguments: --frobnicate"),
    ],
)
def test_bad_scaling_config_exits_2_before_anything(
    store: dict[str, str], capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(_scaling(store, *extra)) == 2
    err = capsys.readouterr().err
    assert message in err
    # one line, one prefix: the message names the flag, not the subcommand again
    assert err.startswith("relgrad: error: ") and err.count("error:") == 1 and len(err.splitlines()) == 1
    assert "relgrad scaling:" not in err and "Traceback" not in err
    assert not Path(store["storage"], "bad").exists()
    assert runs_of(store["uri"], "bad") == []


def test_unreachable_tracking_server(store: dict[str, str], capsys) -> None:
    uri = f"http://127.0.0.1:{_free_port()}"
    assert main(_scaling(store, "--tracking-uri", uri)) == 2
    assert f"tracking server {uri} is unreachable" in capsys.readouterr().err


def test_relative_sqlite_uri_is_rejected(store: dict[str, str], capsys) -> None:
    assert main(_scaling(store, "--tracking-uri", "sqlite:///mlflow.db")) == 2
    assert "must be absolute" in capsys.readouterr().err


def test_gpus_requested_on_a_cpu_cluster(ray_session, store: dict[str, str], capsys) -> None:
    import ray

    if ray.cluster_resources().get("GPU", 0) > 0:
        pytest.skip("this machine has a GPU")
    assert main(_scaling(store, "--gpus-per-trial", "1")) == 2
    assert "gpus_per_trial=1 but this machine has no GPU" in capsys.readouterr().err
    assert runs_of(store["uri"], "bad") == []


def test_resume_of_an_unknown_sweep(store: dict[str, str], capsys) -> None:
    where = ["--tracking-uri", store["uri"], "--storage-path", store["storage"]]
    assert main(["scaling", "--resume", "--name", "bad", *where]) == 2
    assert "no sweep named 'bad'" in capsys.readouterr().err


def test_tune_rejects_unknown_method_and_missing_dim(store: dict[str, str], capsys) -> None:
    base = ["tune", "--preset", "smoke", "--tracking-uri", store["uri"], "--storage-path", store["storage"]]
    assert main([*base, "--method", "newton"]) == 2
    assert "unknown method 'newton'" in capsys.readouterr().err
    assert main([*base, "--samples", "0"]) == 2
    assert "samples" in capsys.readouterr().err


def test_report_of_an_unknown_sweep(store: dict[str, str], tmp_path: Path, capsys) -> None:
    from study.tracking import ensure_experiment, sqlite_path

    args = ["report", "--sweep", "nothing-here", "--tracking-uri", store["uri"], "--out", str(tmp_path / "r")]
    # no store yet: one line, and reading does not create an empty one
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no MLflow store at" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not sqlite_path(store["uri"]).exists()
    # a store without that sweep
    ensure_experiment(store["uri"])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "relgrad report:" in err and "nothing-here" in err and "Traceback" not in err


def test_ui_without_a_store(tmp_path: Path, capsys) -> None:
    uri = f"sqlite:///{(tmp_path / 'none' / 'mlflow.db').as_posix()}"
    assert main(["ui", "--tracking-uri", uri]) == 2
    assert "no MLflow store" in capsys.readouterr().err


def test_report_flags_are_checked_by_the_analysis_rule_before_any_store_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"sqlite:///{tmp_path / 'none.db'}"
    assert main(["report", "--sweep", "x", "--min-dim", "0", "--tracking-uri", uri]) == 2
    assert capsys.readouterr().err == "relgrad: error: --min-dim: must be a positive integer, got 0\n"
    assert not (tmp_path / "none.db").exists()
