"""Sweep configuration: presets, list/range parsing, overrides and validation."""

from __future__ import annotations

import re

import pytest

from relgrad_core.methods import BUILTIN_METHODS
from study.config import (
    ConfigError,
    DataConfig,
    HpoConfig,
    ScalingConfig,
    SingleRun,
    TrainConfig,
    flatten,
    from_dict,
    load_preset,
    parse_assignment,
    parse_float_list,
    parse_int_list,
    preset_names,
    to_dict,
    validate_hpo,
    validate_scaling,
    with_overrides,
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


def test_quick_preset_grid_is_the_designed_one() -> None:
    """The demo's verdicts rest on this grid (see the comment in quick.yaml): the cubic methods one D past
    the quadratic ones, at least four distinct D per fitted curve, every method in it."""
    quick = load_preset("quick").scaling
    reach: dict[str, list[int]] = {}
    for point in quick.points():
        reach.setdefault(point["method"], []).append(point["dim"])
    assert set(reach) == set(BUILTIN_METHODS)  # other tests may have registered methods of their own
    assert max(reach["ordinary"]) == max(reach["autodiff"]) == 3072
    assert all(max(reach[m]) == 2048 for m in ("relative", "mlp", "lu"))
    assert all(len(set(reach[m])) >= 4 for m in reach if m != "jacobian")
    assert quick.budget_s is not None and quick.budget_s >= 3.0  # ordinary's 2.2 s step at 3072 fits


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
        ({"dims": [0, 8]}, "scaling.dims[0]: must be >= 1, got 0"),
        ({"dims": []}, "scaling.dims: empty"),
        ({"lrs": [-1.0]}, "scaling.lrs[0]: must be > 0, got -1"),
        ({"alpha": 0.0}, "scaling.alpha"),
        ({"budget_s": -1.0}, "budget_s"),
        ({"methods": ["jacobian"], "dims": [128], "max_dim": {"jacobian": 64}}, "grid is empty"),
    ],
)
def test_validate_scaling_names_the_problem(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):  # refused when built
        validate_scaling(ScalingConfig(**change))


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


def test_seeds_and_per_method_learning_rates_shape_the_grid() -> None:
    cfg = ScalingConfig(
        methods=["relative", "ordinary", "lu"],
        dims=[8, 16],
        lrs=[1e-3, 1e-2],
        seeds=[0, 1, 2],
        lr_per_method={"lu": 3e-4},
    )
    points = cfg.points()
    # relative and ordinary: 2 lrs × 2 D × 3 seeds; lu: its own lr × 2 D × 3 seeds
    assert len(points) == cfg.grid_size() == 2 * 2 * 2 * 3 + 2 * 3
    assert {p["lr"] for p in points if p["method"] == "lu"} == {3e-4}
    assert {p["lr"] for p in points if p["method"] == "relative"} == {1e-3, 1e-2}
    per_point = {}
    for p in points:
        per_point.setdefault((p["method"], p["lr"], p["dim"]), []).append(p["seed"])
    assert all(seeds == [0, 1, 2] for seeds in per_point.values())
    assert [p["seed"] for p in ScalingConfig(seed=4).points()][:1] == [4]  # one seed: `seed`


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"seeds": []}, "scaling.seeds: empty"),
        ({"seeds": [0, -1]}, "scaling.seeds[1]: must be >= 0"),
        ({"seeds": [1, 1]}, "seeds has duplicates: [1, 1]"),
        (
            {"methods": ["relative", "mlp", "relative"]},
            "methods has duplicates: ['relative', 'mlp', 'relative']",
        ),
        ({"depths": [2, 2]}, "depths has duplicates: [2, 2]"),
        ({"batch_sizes": [64, 64]}, "batch_sizes has duplicates: [64, 64]"),
        ({"lrs": [0.001, 0.001]}, "lrs has duplicates: [0.001, 0.001]"),
        ({"seeds": [0, 1], "seed": 3}, "seed=3 and seeds=[0, 1]: give one"),
        ({"lr_per_method": {"newton": 1e-3}}, "scaling.lr_per_method.newton: unknown method 'newton'"),
        ({"lr_per_method": {"relative": 0.0}}, "scaling.lr_per_method.relative: must be > 0"),
        ({"lr_per_method": {"lu": 1e-3}}, "lr_per_method names methods not in methods: lu"),
    ],
)
def test_bad_seeds_and_per_method_lrs_give_one_line(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        from_dict(ScalingConfig, raw)


def test_flatten_for_mlflow_params() -> None:
    flat = flatten(to_dict(ScalingConfig(dims=[8, 16])))
    assert flat["dims"] == "8,16"
    assert flat["train.epochs"] == "5"
    assert flat["data.dataset"] == "teacher"


# --------------------------------------------------------------------------------------------
# Typed config: one line per problem, names from the core's registries
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"methods": "relative"}, "scaling.methods: must be a list, e.g. [a, b], got 'relative'"),
        ({"data": None}, "scaling.data: must be a mapping, got None"),
        ({"dims": [8.5]}, "scaling.dims[0]: must be an integer, got 8.5"),
        ({"dims": [True]}, "scaling.dims[0]: must be an integer, got True"),
        ({"dims": [2**21]}, "scaling.dims[0]: must be <= 1048576"),
        ({"lrs": [float("nan")]}, "scaling.lrs[0]: must be a finite number, got nan"),
        ({"lrs": [float("inf")]}, "scaling.lrs[0]: must be a finite number"),
        ({"lrs": [True]}, "scaling.lrs[0]: expected a number, got True"),
        ({"lrs": [1e13]}, "scaling.lrs[0]: must be <= 1e+12"),
        ({"budget_s": {"newton": 1.0}}, "scaling.budget_s: unknown method 'newton'"),
        ({"budget_s": float("inf")}, "scaling.budget_s: must be a finite number of seconds > 0"),
        ({"max_dim": {"newton": 8}}, "scaling.max_dim.newton: unknown method 'newton'"),
        ({"train": {"optimizer": "lbfgs"}}, "scaling.train.optimizer: unknown optimizer 'lbfgs'"),
        ({"train": {"device": "gpu"}}, "scaling.train.device: unknown device 'gpu'"),
        ({"train": {"dtype": "float16"}}, "scaling.train.dtype: must be 'float32' or 'float64'"),
        ({"train": {"epochs": "3"}}, "scaling.train.epochs: must be an integer, got '3'"),
        ({"data": {"n_train": 0}}, "scaling.data.n_train: must be >= 1, got 0"),
        ({"data": {"dataset": "file"}}, "scaling.data: dataset 'file' needs a file"),
        ({"data": {"file": "relative/x.npy"}}, "scaling.data: file must be an absolute path"),
        ({"resources": {"max_failures": -1}}, "scaling.resources.max_failures: must be >= 0"),
        ({"dims": [0], "alpha": 2}, "scaling.dims[0]: must be >= 1, got 0 (and 1 more problem)"),
    ],
)
def test_bad_fields_give_one_line_naming_the_field(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_dict(ScalingConfig, raw)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_every_core_optimizer_is_accepted() -> None:
    from relgrad_core.training import OPTIMIZERS

    assert len(OPTIMIZERS) > 2
    for name in OPTIMIZERS:
        assert TrainConfig(optimizer=name).optimizer == name


def test_grid_size_is_bounded_and_counted_without_building_it() -> None:
    cfg = ScalingConfig(
        methods=["relative"], dims=list(range(1, 1001)), lrs=[1e-3 * (k + 1) for k in range(10)]
    )
    assert cfg.grid_size() == len(cfg.points()) == 10_000
    with pytest.raises(ConfigError, match="the grid has 20000 points; at most 10000"):
        ScalingConfig(
            methods=["relative", "ordinary"],
            dims=list(range(1, 1001)),
            lrs=[1e-3 * (k + 1) for k in range(10)],
        )


def test_a_changed_config_is_validated_again() -> None:
    cfg = load_preset("smoke").scaling
    cfg.train.epochs = 0  # plain assignment is not checked: validate_* checks it all again
    with pytest.raises(ConfigError, match=re.escape("scaling.train.epochs: must be >= 1, got 0")):
        validate_scaling(cfg)


def test_overrides_make_a_validated_copy() -> None:
    base = load_preset("smoke").scaling
    changed = with_overrides(base, [("train.epochs", 3), ("max_dim.relative", 4), ("dims", [4, 8, 16])])
    assert (changed.train.epochs, changed.max_dim, changed.dims) == (3, {"relative": 4}, [4, 8, 16])
    assert base.train.epochs == 2 and base.max_dim == {}  # the original is untouched
    with pytest.raises(ConfigError, match=re.escape("--set train.epochs.x: scaling.train.epochs is not a")):
        with_overrides(base, [("train.epochs.x", 3)])
    with pytest.raises(ConfigError, match=re.escape("scaling.train: unknown keys ['epochz']")):
        with_overrides(base, [("train.epochz", 3)])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train.epochs=3", ("train.epochs", 3)),
        ("lrs=[1e-3, 0.01]", ("lrs", ["1e-3", 0.01])),  # YAML 1.1: 1e-3 is a string, pydantic reads it
        ("train.patience=null", ("train.patience", None)),
        ("data.dataset=digits", ("data.dataset", "digits")),
        ("budget_s={ordinary: 0.5}", ("budget_s", {"ordinary": 0.5})),
    ],
)
def test_parse_assignment(text: str, expected: tuple) -> None:
    assert parse_assignment(text) == expected


@pytest.mark.parametrize("text", ["epochs", "=3", "train..epochs=3", "a b=1", "x=[1,"])
def test_parse_assignment_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="--set"):
        parse_assignment(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nan", "'nan' is not a finite number"),
        ("inf", "'inf' is not a finite number"),
        ("1:1000000000", "'1:1000000000' gives 1000000000 values; at most 1000 per list"),
        ("1:1000000000:x1.0001", "'1:1000000000:x1.0001' gives 207244 values; at most 1000 per list"),
        ("8:inf:x2", "'inf' is not a finite number"),
    ],
)
def test_int_lists_are_finite_and_sized_before_they_are_built(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"--dims: {message}")):
        parse_int_list(text, "--dims")


def test_float_lists_are_finite_and_sized() -> None:
    for text in ("nan", "1e-3,inf", "1e-4:inf:x10"):
        with pytest.raises(ConfigError, match="not a finite number"):
            parse_float_list(text, "--lrs")
    with pytest.raises(ConfigError, match="at most 1000 per list"):
        parse_float_list("1e-300:1e300:x1.01", "--lrs")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("scaling: [1, 2\n", "invalid YAML at line 2"),
        ("scaling: !!python/object/apply:os.system [echo hi]\n", "could not determine a constructor"),
        ("scaling:\n", "section 'scaling' must be a mapping, got null"),
        ("- 1\n- 2\n", "expected a mapping at the top level, got list"),
        ("scaling: {methods: relative}\n", "scaling.methods: must be a list"),
        ("scaling: {data: null}\n", "scaling.data: must be a mapping, got None"),
        ("tune: {space: {samples: many}}\n", "tune.space.samples: must be an integer, got 'many'"),
        ("extra: {}\n", "unknown sections ['extra']"),
    ],
)
def test_bad_yaml_presets_give_one_line(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_preset(str(path))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_missing_preset_file_is_named(tmp_path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_preset(str(tmp_path / "absent.yaml"))


def test_names_come_from_the_core_registries() -> None:
    import dataclasses

    from relgrad_core import get_method, register_dataset, register_method, unregister_method
    from relgrad_core.data import unregister_dataset

    with pytest.raises(ConfigError, match="unknown method 'twin'"):
        ScalingConfig(methods=["twin"])
    register_method(dataclasses.replace(get_method("relative"), name="twin"))
    register_dataset("twin-data", lambda *, seed=0, dtype=None: None)
    try:
        assert ScalingConfig(methods=["twin"], dims=[8], max_dim={"twin": 8}).methods == ["twin"]
        assert HpoConfig(space={"method": "twin"}, data={"dataset": "twin-data"}).data.dataset == "twin-data"
    finally:
        unregister_method("twin")
        unregister_dataset("twin-data")
    with pytest.raises(ConfigError, match="unknown dataset 'twin-data'"):
        DataConfig(dataset="twin-data")


def test_configs_pickle_for_ray() -> None:
    import pickle

    cfg = load_preset("smoke").scaling
    assert pickle.loads(pickle.dumps(cfg)) == cfg


def test_single_run_defaults_and_point() -> None:
    run = SingleRun(method="ordinary", dim=8)
    assert run.point() == {
        "method": "ordinary",
        "dim": 8,
        "depth": 2,
        "batch_size": 100,
        "lr": 1e-3,
        "alpha": 0.3,
        "seed": 0,
    }
    assert (run.train.epochs, run.train.patience, run.data.n_train) == (None, 30, 10_000)  # to the optimum


def test_epochs_null_trains_to_patience_and_needs_a_stopping_rule() -> None:
    assert TrainConfig(epochs=None, patience=10).epochs is None
    with pytest.raises(ConfigError, match="epochs: null trains until patience; set patience"):
        with_overrides(load_preset("smoke").scaling, [("train.epochs", None), ("train.time_budget_s", None)])
    with pytest.raises(ConfigError, match="ASHA stops trials at fixed epochs"):
        with_overrides(load_preset("smoke").tune, [("train.epochs", None)])


def test_tracked_params_leave_out_unset_and_test_only_fields() -> None:
    from study.config import ScalingConfig, tracked_params

    params = tracked_params(ScalingConfig(inject_worker_kill="/tmp/marker"))
    assert "None" not in params.values()
    assert not [k for k in params if k in ("data.root", "data.dim", "data.file", "train.max_steps")]
    assert "inject_worker_kill" not in params
    assert params["methods"] == "relative,ordinary" and params["train.epochs"] == "5"


def test_registry_names_can_wait_for_the_rest() -> None:
    from study.config import SingleRun, registry_names_deferred

    with registry_names_deferred():  # a plain mistake is found without the core's registries
        assert SingleRun(method="bogus").method == "bogus"
        with pytest.raises(ConfigError, match=r"run\.depth: must be >= 1"):
            SingleRun(method="bogus", depth=0)
    with registry_names_deferred(checked=["method"]), pytest.raises(ConfigError) as info:
        SingleRun(method="bogus", train={"epochs": 1, "optimizer": "also-bogus"})
    assert info.value.field == "method"
    assert info.value.problem.startswith("unknown method 'bogus' (choose from")
    with pytest.raises(ConfigError, match="unknown optimizer 'also-bogus'"):
        SingleRun(train={"epochs": 1, "optimizer": "also-bogus"})
