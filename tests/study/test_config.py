"""Sweep configuration: presets, list/range parsing, overrides and validation."""

from __future__ import annotations

import pytest

from study.config import (
    ConfigError,
    ScalingConfig,
    flatten,
    load_preset,
    parse_float_list,
    parse_int_list,
    preset_names,
    to_dict,
    validate_hpo,
    validate_scaling,
)


def test_presets_load_and_validate() -> None:
    assert {"quick", "paper", "gpu", "smoke"} <= set(preset_names())
    for name in preset_names():
        preset = load_preset(name)
        validate_scaling(preset.scaling)
        validate_hpo(preset.tune)


def test_quick_preset_is_cpu_and_caps_jacobian() -> None:
    quick = load_preset("quick").scaling
    assert quick.resources.gpus_per_trial == 0
    dims = {p["dim"] for p in quick.points() if p["method"] == "jacobian"}
    assert max(dims) <= 64 < max(quick.dims)


def test_paper_preset_reaches_24k_with_the_three_curves() -> None:
    paper = load_preset("paper").scaling
    assert {"relative", "ordinary", "autodiff"} <= set(paper.methods)
    assert max(paper.dims) >= 23000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("64,128,256", [64, 128, 256]),
        ("64:1024:x2", [64, 128, 256, 512, 1024]),
        ("32:128:32", [32, 64, 96, 128]),
        ("3:5", [3, 4, 5]),
        ("8,16:32:x2", [8, 16, 32]),
    ],
)
def test_parse_int_list(text: str, expected: list[int]) -> None:
    assert parse_int_list(text) == expected


def test_parse_float_list() -> None:
    assert parse_float_list("1e-4:1e-2:x10") == pytest.approx([1e-4, 1e-3, 1e-2])
    assert parse_float_list("0.001,3e-3") == [0.001, 0.003]


@pytest.mark.parametrize("text", ["", "64:32:x2", "64:1024:x1", "a,b", "1.5", "8:16:0"])
def test_parse_int_list_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_int_list(text, "--dims")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"methods": ["newton"]}, "unknown method 'newton'"),
        ({"methods": []}, "scaling.methods: empty"),
        ({"dims": [0, 8]}, "scaling.dims: 0 < 1"),
        ({"dims": []}, "scaling.dims: empty"),
        ({"lrs": [-1.0]}, "learning rate -1.0"),
        ({"alpha": 0.0}, "scaling.alpha"),
        ({"budget_s": -1.0}, "budget_s"),
        ({"methods": ["jacobian"], "dims": [128], "max_dim": {"jacobian": 64}}, "grid is empty"),
    ],
)
def test_validate_scaling_names_the_problem(change: dict, message: str) -> None:
    cfg = ScalingConfig(**change)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        validate_scaling(cfg)


def test_validate_scaling_rejects_unknown_or_real_dataset() -> None:
    cfg = ScalingConfig()
    cfg.data.dataset = "imagenet"
    with pytest.raises(ConfigError, match="unknown dataset 'imagenet'"):
        validate_scaling(cfg)
    cfg.data.dataset = "digits"
    with pytest.raises(ConfigError, match="generate data at every D"):
        validate_scaling(cfg)


def test_preset_rejects_unknown_keys(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("scaling:\n  methodz: [relative]\n")
    with pytest.raises(ConfigError, match="unknown keys \\['methodz'\\]"):
        load_preset(str(path))
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        load_preset("nope")


def test_grid_points_and_per_method_budget() -> None:
    cfg = ScalingConfig(
        methods=["relative", "ordinary"],
        dims=[16, 8],
        lrs=[1e-3, 1e-2],
        budget_s={"ordinary": 0.5},
    )
    points = cfg.points()
    assert len(points) == 2 * 2 * 2
    assert [p["dim"] for p in points[:2]] == [8, 16]  # ascending D within a curve
    assert cfg.budget_for("ordinary") == 0.5 and cfg.budget_for("relative") is None


def test_flatten_for_mlflow_params() -> None:
    flat = flatten(to_dict(ScalingConfig(dims=[8, 16])))
    assert flat["dims"] == "8,16"
    assert flat["train.epochs"] == "5"
    assert flat["data.dataset"] == "teacher"
