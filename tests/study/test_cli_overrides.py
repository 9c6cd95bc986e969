"""How the CLI builds a config (preset + short flags + ``--set``), and a sweep's outcome as its exit code.

The sweep runners are replaced by recorders here: these tests are about the command line, not Ray.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from study import cli
from study.cli import FLAGS, build_config, build_parser, main
from study.config import HpoConfig, ScalingConfig, SingleRun, config_class, load_preset
from study.finalise import SweepSummary
from study.kinds import RUNS, SCALING, TRAIN, TUNE
from tests.study.conftest import runs_of


def _args(*argv: str) -> Any:
    return build_parser().parse_args(list(argv))


def test_short_flags_and_set_build_one_validated_config() -> None:
    cfg = build_config(
        SCALING,
        _args(
            "scaling", "--preset", "smoke", "--dims", "4:16:x2", "--epochs", "3", "--set", "train.epochs=4"
        ),
    )
    assert isinstance(cfg, ScalingConfig)
    assert cfg.dims == [4, 8, 16]
    assert cfg.train.epochs == 4  # --set comes after the short flags: it wins
    assert load_preset("smoke").scaling.train.epochs == 2  # the preset is not changed


def test_the_same_flag_lands_in_each_commands_own_field() -> None:
    tune = build_config(TUNE, _args("tune", "--preset", "smoke", "--method", "ordinary", "--seed", "3"))
    run = build_config(TRAIN, _args("train", "--method", "ordinary", "--seed", "3", "--optimizer", "rmsprop"))
    assert isinstance(tune, HpoConfig) and (tune.space.method, tune.space.seed) == ("ordinary", 3)
    assert isinstance(run, SingleRun) and (run.method, run.seed, run.train.optimizer) == (
        "ordinary",
        3,
        "rmsprop",
    )


def test_every_flag_path_is_a_field_of_its_command() -> None:
    roots = {kind: config_class(kind)() for kind in RUNS}
    for flag in FLAGS:
        for command, path in flag.paths.items():
            node: Any = roots[command]
            for part in path.split("."):
                assert part in type(node).model_fields, f"{flag.option} -> {command}: {path}"
                node = getattr(node, part)


def test_train_on_a_named_dataset_takes_its_dimension(store: dict[str, str]) -> None:
    argv = ["train", "--dataset", "digits", "--dim", "8", "--epochs", "1", "--steps-per-epoch", "2"]
    argv += ["--device", "cpu", "--name", "digits-one", "--tracking-uri", store["uri"]]
    assert main(argv) == 0
    [child] = [r for r in runs_of(store["uri"], "digits-one") if r.data.tags["role"] == "trial"]
    assert (child.data.params["dataset"], child.data.params["dim"]) == ("digits", "64")  # not --dim


def _summary(code_statuses: dict[str, int], complete: bool = True) -> SweepSummary:
    return SweepSummary(
        sweep="s",
        kind=SCALING,
        tracking_uri="sqlite:////x.db",
        experiment_id="0",
        parent_run_id="p",
        storage_path="/tmp",
        statuses=code_statuses,
        complete=complete,
    )


@pytest.fixture
def fake_sweep(monkeypatch: pytest.MonkeyPatch, store: dict[str, str]) -> dict[str, Any]:
    """Ray start-up skipped; ``run_scaling`` returns (or raises) what the test puts in ``outcome``."""
    seen: dict[str, Any] = {}

    def run_scaling(cfg: ScalingConfig, **kwargs: Any) -> SweepSummary:
        seen["cfg"], seen["kwargs"] = cfg, kwargs
        if isinstance(seen["outcome"], BaseException):
            raise seen["outcome"]
        return seen["outcome"]

    monkeypatch.setattr("study.ray_runtime.start_ray", lambda *a, **k: None)
    monkeypatch.setattr("study.sweep.run_scaling", run_scaling)
    seen["argv"] = [
        "scaling",
        "--preset",
        "smoke",
        "--name",
        "s",
        "--tracking-uri",
        store["uri"],
        "--storage-path",
        store["storage"],
    ]
    return seen


@pytest.mark.parametrize(
    ("statuses", "complete", "code"),
    [
        ({"ok": 3, "diverged": 1, "skipped_over_budget": 2}, True, 0),
        ({"ok": 3, "failed": 1}, True, 1),
        ({"failed": 4}, True, 1),  # every trial failed: not a success
        ({"ok": 1, "interrupted": 1}, False, 130),
    ],
)
def test_exit_code_comes_from_the_summary(
    fake_sweep: dict[str, Any], statuses: dict[str, int], complete: bool, code: int
) -> None:
    fake_sweep["outcome"] = _summary(statuses, complete)
    assert main(fake_sweep["argv"]) == code


def test_ctrl_c_exits_130_with_the_resume_command(
    fake_sweep: dict[str, Any], capsys: pytest.CaptureFixture[str], store: dict[str, str]
) -> None:
    fake_sweep["outcome"] = KeyboardInterrupt()
    assert main(fake_sweep["argv"]) == 130
    err = capsys.readouterr().err
    assert "relgrad scaling --resume --name s" in err
    assert f"--storage-path {store['storage']}" in err


def test_default_sweep_name_is_made_safe(fake_sweep: dict[str, Any], tmp_path: Path) -> None:
    preset = tmp_path / "my preset's copy.yaml"
    preset.write_text((Path(cli.__file__).parent / "presets" / "smoke.yaml").read_text())
    fake_sweep["outcome"] = _summary({"ok": 4})
    argv = [a for a in fake_sweep["argv"] if a not in ("--name", "s")]
    argv[argv.index("smoke")] = str(preset)
    assert main(argv) == 0
    assert fake_sweep["kwargs"]["sweep"].startswith("my-preset-s-copy-")


def _quick(fake_sweep: dict[str, Any], *flags: str) -> list[str]:
    argv = list(fake_sweep["argv"])
    argv[argv.index("smoke")] = "quick"
    return [*argv, "--dataset", "noise", "--batch-sizes", "64", *flags]


def test_user_dims_set_the_presets_caps_aside_and_the_grid_is_printed(
    fake_sweep: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # the grid: the quick preset caps relative and mlp at 2048, but the user asked for 4096
    fake_sweep["outcome"] = _summary({"ok": 18})
    assert main(_quick(fake_sweep, "--methods", "relative,ordinary,mlp", "--dims", "128:4096:x2")) == 0
    cfg = fake_sweep["cfg"]
    assert cfg.max_dim == {} and all(cfg.dims_of(m) == [128, 256, 512, 1024, 2048, 4096] for m in cfg.methods)
    out = capsys.readouterr().out
    assert (
        "  relative: D = 128…4096 (6 D)\n  ordinary: D = 128…4096 (6 D)\n  mlp: D = 128…4096 (6 D)\n" in out
    )
    assert "the preset's max_dim caps (relative ≤ 2048, mlp ≤ 2048) do not apply: --dims was given" in out
    assert "per-step budget (relative 3 s, ordinary 3 s, mlp 3 s)" in out
    assert out.index("grid:") < out.index("MLflow store:")  # printed before the sweep's own output


def test_caps_the_user_sets_beside_dims_apply_and_are_printed(
    fake_sweep: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sweep["outcome"] = _summary({"ok": 7})
    argv = _quick(fake_sweep, "--methods", "relative,jacobian", "--set", "dims=[64,128,256,512]")
    assert main([*argv, "--set", "max_dim.jacobian=128"]) == 0
    assert fake_sweep["cfg"].max_dim == {"jacobian": 128}
    out = capsys.readouterr().out
    assert "  relative: D = 64…512 (4 D)\n" in out
    assert "  jacobian: D = 64, 128; capped at 128 by max_dim (skips 256, 512)\n" in out
    assert "the preset's max_dim caps (jacobian ≤ 64, relative ≤ 2048) do not apply" in out
    assert main([*argv, "--set", "max_dim.jacobian=32"]) == 0
    assert "  jacobian: not run: every D is above its max_dim 32\n" in capsys.readouterr().out


def test_without_dims_the_presets_caps_apply_and_are_printed(
    fake_sweep: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sweep["outcome"] = _summary({"ok": 7})
    assert main(_quick(fake_sweep, "--methods", "relative,ordinary")) == 0
    assert fake_sweep["cfg"].dims_of("relative")[-1] == 2048
    out = capsys.readouterr().out
    assert "  relative: D = 64…2048 (6 D); capped at 2048 by max_dim (skips 3072)\n" in out
    assert "  ordinary: D = 64…3072 (7 D)\n" in out and "do not apply" not in out
