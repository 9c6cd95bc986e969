"""Peers through the command line: a real sweep with zuko's and nflows' flows and its report headline, and
the one line a user without the peers extra gets instead."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from relgrad_core.peers import INSTALL_HINT
from study.cli import main
from tests.core.conftest import hide_peers
from tests.study.conftest import runs_of, write_preset

METHODS = "relative,zuko_lu,nflows_lu,mlp"


def _where(store: dict[str, str]) -> list[str]:
    return ["--tracking-uri", store["uri"], "--storage-path", store["storage"]]


def test_a_peer_without_its_package_is_one_line_and_exit_2_before_ray(
    store: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hide_peers(monkeypatch)

    def no_ray(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ray was started")

    monkeypatch.setattr("study.ray_runtime.start_ray", no_ray)
    argv = ["scaling", "--preset", "smoke", "--name", "nopeers", "--methods", METHODS, *_where(store)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "method 'zuko_lu' is not installed: it needs the zuko package" in err and INSTALL_HINT in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert runs_of(store["uri"], "nopeers") == []


def test_a_sweep_with_peers_and_its_headline(
    ray_session, store: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("zuko")
    pytest.importorskip("nflows")
    preset = write_preset(tmp_path, scaling={"dims": [4, 8, 16, 32]})
    out = tmp_path / "report"
    argv = ["scaling", "--preset", preset, "--name", "peers", "--methods", METHODS, *_where(store)]
    assert main([*argv, "--report", "--report-dir", str(out), "--predict-dims", "64"]) == 0
    printed = capsys.readouterr().out

    trials = [r for r in runs_of(store["uri"], "peers") if r.data.tags.get("role") != "parent"]
    assert sorted(r.data.params["method"] for r in trials) == sorted(METHODS.split(",") * 4)
    assert all(r.data.tags.get("status") == "ok" for r in trials), [r.data.tags for r in trials]
    for r in trials:  # the peers carry no FLOP model: flop_ratio is left out, not logged as NaN
        assert ("flop_ratio" in r.data.metrics) == (r.data.params["method"] in ("relative", "mlp"))
        assert r.data.metrics["test_ll"] == r.data.metrics["test_ll"]  # a finite LL from the harness

    # the headline names the peers as such and compares relative with each, like with a built-in
    for peer in ("zuko_lu", "nflows_lu"):
        assert f"relative vs {peer}: ×" in printed and "measured at D = 32" in printed
    assert "peers, other libraries' flows in the same harness: zuko_lu (zuko), nflows_lu (nflows)" in printed
    verdicts = pd.read_csv(out / "tables" / "verdicts_runtime.csv")
    assert list(verdicts["method"]) == ["relative", "mlp", "zuko_lu", "nflows_lu"]  # built-ins, then peers
