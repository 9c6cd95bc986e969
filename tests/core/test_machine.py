"""relgrad_core.machine: the one place that says where a measurement ran."""

import math
import subprocess

from relgrad_core.machine import cpu_model, git_commit, load_avg_1m, machine_info


def test_git_commit_of_a_repository_outside_one_and_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("RELGRAD_GIT_COMMIT", raising=False)
    assert git_commit(tmp_path) == "unknown"
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f.txt").write_text("a\n")
    env = ["-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", *env, "-C", str(tmp_path), "add", "f.txt"], check=True)
    subprocess.run(["git", *env, "-C", str(tmp_path), "commit", "-qm", "x"], check=True)
    full, short = git_commit(tmp_path), git_commit(tmp_path, short=True)
    assert len(full) == 40 and full.startswith(short)
    (tmp_path / "f.txt").write_text("b\n")
    assert git_commit(tmp_path) == f"{full}-dirty"
    monkeypatch.setenv("RELGRAD_GIT_COMMIT", "abc1234")
    assert git_commit(tmp_path) == "abc1234"


def test_machine_info_says_what_a_benchmark_needs():
    info = machine_info("cpu")
    for key in ("date", "command", "git_commit", "cpu_model", "cpu_count", "torch_threads", "torch_version"):
        assert info[key] not in (None, ""), key
    assert info["device"] == "cpu" and "gpu" not in info
    assert cpu_model() == info["cpu_model"]
    load = load_avg_1m()
    assert math.isnan(load) or load >= 0
