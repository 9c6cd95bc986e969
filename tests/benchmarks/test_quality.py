"""benchmarks.quality: paired statistics by hand, the weight-only variant and the folded init against
autograd/exact identities in float64, the typed summary, and the --quick path end to end."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.quality import __main__ as cli
from benchmarks.quality.results import Arm, Comparison, Experiment
from benchmarks.quality.runs import TABLE, RunResult, RunSpec, load
from benchmarks.quality.stats import paired_difference
from benchmarks.quality.summary import experiment_markdown
from benchmarks.quality.variants import WEIGHT_ONLY, ensure_registered, fold_standardization
from relgrad_core import DATASETS, DenseFlow, backward, gaussian_test_ll
from relgrad_core.data import unregister_dataset


def test_paired_difference_matches_hand_computation() -> None:
    # d = a − b = (1, 2, 6): mean 3, sd² = ((−2)² + (−1)² + 3²)/2 = 7, SE = √(7/3)
    result = paired_difference([3.0, 5.0, 10.0], [2.0, 3.0, 4.0])
    assert (result.n, result.wins_a) == (3, 3)
    assert result.diff == pytest.approx(3.0)
    assert result.se == pytest.approx(math.sqrt(7 / 3))
    assert (result.mean_a, result.mean_b) == (pytest.approx(6.0), pytest.approx(3.0))


def test_paired_difference_is_not_the_unpaired_one() -> None:
    # a shared per-seed offset cancels in the pairs: the SE is zero although both samples vary a lot
    result = paired_difference([10.0, 20.0, 30.0], [9.0, 19.0, 29.0])
    assert result.diff == pytest.approx(1.0)
    assert result.se == pytest.approx(0.0)


def test_paired_difference_single_pair_has_no_standard_error() -> None:
    result = paired_difference([1.5], [2.0])
    assert result.diff == pytest.approx(-0.5)
    assert math.isnan(result.se)


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [([1.0, 2.0], [1.0], "equal lengths"), ([], [], "zero pairs"), ([1.0, math.nan], [1.0, 2.0], "finite")],
)
def test_paired_difference_rejects_bad_input(a: list[float], b: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        paired_difference(a, b)


def _flow_with_bias(dim: int = 4, seed: int = 0) -> DenseFlow:
    flow = DenseFlow(dim, 2, alpha=0.3, dtype=torch.float64, seed=seed)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for layer in flow.layers:
            layer.weight.add_(0.3 * torch.randn(dim, dim, generator=generator, dtype=torch.float64))
            layer.bias.copy_(torch.randn(dim, generator=generator, dtype=torch.float64))
    return flow


def test_weight_only_direction_is_euclidean_gradient_times_weight_metric() -> None:
    """ΔW = G_W·WᵀW and Δb = G_b, with G the autograd gradient of the exact mean NLL (float64)."""
    ensure_registered()
    flow = _flow_with_bias()
    x = torch.randn(7, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    (-flow.log_prob(x).mean()).backward()
    euclid = [(layer.weight.grad.clone(), layer.bias.grad.clone()) for layer in flow.layers]
    backward(flow, x, WEIGHT_ONLY)
    for layer, (g_w, g_b) in zip(flow.layers, euclid, strict=True):
        weight = layer.weight.detach()
        torch.testing.assert_close(layer.weight.grad, g_w @ weight.mT @ weight)
        torch.testing.assert_close(layer.bias.grad, g_b)
    # and it is not the augmented relative direction, whose bias part is [G_W, G_b]·W̃ᵀW̃'s last column
    backward(flow, x, "relative")
    assert not torch.allclose(flow.layers[0].bias.grad, euclid[0][1])


def test_folded_init_on_raw_data_equals_standardised_flow_plus_log_jacobian() -> None:
    """log p_raw(x) = log p_std((x − μ)/s) − Σ log s exactly, with the standardisation folded into W₁, b₁."""
    raw = 3.0 * torch.randn(50, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64) + 7.0
    mean, std = raw.mean(dim=0), raw.std(dim=0, correction=0)
    plain = _flow_with_bias(seed=3)
    folded = _flow_with_bias(seed=3)
    fold_standardization(folded, mean, std)
    expected = plain.log_prob((raw - mean) / std) - torch.log(std).sum()
    torch.testing.assert_close(folded.log_prob(raw), expected)


def _result(seed: int, test_ll: float, *, diverged: bool = False) -> RunResult:
    spec = RunSpec("digits", "relative", seed)
    return RunResult(spec, test_ll, test_ll, -100.0, 10, 20, 1.0, "patience", diverged)


def test_comparison_pairs_by_seed_and_drops_diverged_pairs() -> None:
    candidate = Arm("relative", [_result(0, -97.0), _result(1, -95.0), _result(2, math.nan, diverged=True)])
    baseline = Arm("ordinary", [_result(0, -96.0), _result(1, -96.0), _result(2, -90.0)])
    test = Comparison("relative − ordinary", candidate, baseline).test()
    assert test is not None and test.n == 2
    assert test.diff == pytest.approx(0.0)  # (−1 + 1)/2
    assert candidate.gain() == (pytest.approx(4.0), pytest.approx(1.0))  # gains 3 and 5 over −100
    assert candidate.n_diverged == 1
    experiment = Experiment("x", "digits, α = 0.3", {"relative": candidate, "ordinary": baseline})
    experiment.compare("relative − ordinary", "relative", "ordinary")
    text = experiment_markdown(experiment)
    assert "| relative | -96.00 | -100.00 | +4.00 ± 1.00 | 10 | 1/3 | 0 |" in text
    assert "| relative − ordinary | +0.00 ± 1.00 | 1/2 |" in text


def test_bad_cli_arguments_fail_before_any_work() -> None:
    parser = cli.build_parser()
    for argv in (
        ["--experiments", "digits,nope"],
        ["--budgets", "10,-1"],
        ["--seeds", "0"],
        ["--workers", "3"],
    ):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)


@pytest.fixture
def no_leftover_registration() -> Iterator[None]:
    """The table experiment registers a data set in this process: leave the registry as found."""
    before = set(DATASETS)
    yield
    for name in set(DATASETS) - before:
        unregister_dataset(name)


def test_table_is_reached_through_the_registry(no_leftover_registration: None) -> None:
    data = load(TABLE, 0, True, ())
    assert TABLE in DATASETS and data.dim == 30 and data.ll_space.startswith("raw")
    assert data.ll_offset == pytest.approx(-np.log(data.info["standardization"]["std"]).sum())


def test_quick_run_writes_typed_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_leftover_registration: None
) -> None:
    out = tmp_path / "quality.json"
    log = tmp_path / "progress.log"
    with pytest.warns(UserWarning, match="epoch cap"):  # the quick plan's 3-epoch cap cuts every run
        cli.main(["--quick", "--experiments", "digits,teacher", "--out", str(out), "--log", str(log)])
    payload = json.loads(out.read_text())
    assert {"cpu_model", "torch_version", "date", "command", "git_commit"} <= set(payload["machine"])
    names = [e["name"] for e in payload["experiments"]]
    assert names == ["digits α=0.3", "teacher D=6"]
    digits = payload["experiments"][0]
    arms = {arm["label"]: arm for arm in digits["arms"]}
    assert {"ordinary", "relative", "(a) relative, weight-only metric", "(d) relative, folded init"} <= set(
        arms
    )
    # every run is cut by the quick cap, and says so
    assert arms["relative"]["n_cap_cut"] == 2
    # each run's Gaussian yardstick is the one of its own seed's split, in the reported (logit) space
    for run in arms["ordinary"]["runs"]:
        data = load("digits", run["spec"]["seed"], True, (("max_rows", 120),))
        assert run["gaussian_test_ll"] == pytest.approx(gaussian_test_ll(data))
        assert run["gain"] == pytest.approx(run["test_ll"] - run["gaussian_test_ll"])
    # the folded arm trains on raw logit pixels and still reports in logit space: same Gaussian
    folded = arms["(d) ordinary, folded init"]["runs"][0]
    assert folded["gaussian_test_ll"] == pytest.approx(arms["ordinary"]["runs"][0]["gaussian_test_ll"])
    comparison = digits["comparisons"][0]["test"]
    assert comparison["diff"] == pytest.approx(comparison["mean_a"] - comparison["mean_b"])
    # a 3-epoch student of a teacher is strictly worse than the truth on test (KL > 0)
    teacher = {arm["label"]: arm for arm in payload["experiments"][1]["arms"]}["relative"]
    for run in teacher["runs"]:
        assert run["true_test_ll"] - run["test_ll"] > 0.5
    assert "| relative − ordinary |" in capsys.readouterr().out
    assert "digits" in log.read_text()


def test_quick_peers_run_compares_every_installed_peer_with_relative(
    tmp_path: Path, no_leftover_registration: None
) -> None:
    from relgrad_core.peers import installed_peers

    out = tmp_path / "peers.json"
    with pytest.warns(UserWarning, match="epoch cap"):
        cli.main(["--quick", "--experiments", "peers", "--seeds", "1", "--out", str(out)])
    payload = json.loads(out.read_text())
    assert [e["name"] for e in payload["experiments"]] == [
        "peers digits",
        f"peers {TABLE}",
        "peers teacher D=6",
    ]
    for experiment in payload["experiments"]:
        arms = {arm["label"]: arm for arm in experiment["arms"]}
        methods = ["relative", "ordinary", "lu", *installed_peers()]
        again = [f"{m}, lr 0.0003" for m in methods if m in ("lu", "zuko_lu", "nflows_lu")]
        assert list(arms) == methods + again  # the LU-factored flows once more at Plan.lu_lr
        assert {arms[a]["runs"][0]["spec"]["lr"] for a in again} == {3e-4}
        assert {arms[m]["runs"][0]["spec"]["lr"] for m in methods} == {1e-3}
        assert all(arm["n_diverged"] == 0 and math.isfinite(arm["mean_test_ll"]) for arm in arms.values())
        depth = {label: arm["runs"][0]["spec"]["depth"] for label, arm in arms.items()}
        assert depth.pop("zuko_maf", 3) == 3  # a MAF gets the plan's number of transforms
        assert set(depth.values()) == {2}  # the dense flows the reference depth
        labels = [c["label"] for c in experiment["comparisons"]]
        assert labels == [f"{m} − relative" for m in list(arms)[1:]]
