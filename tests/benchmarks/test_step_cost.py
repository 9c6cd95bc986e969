"""The step-cost benchmark runs end to end and its arithmetic (ratios, slopes) is right."""

import json

import pytest

from benchmarks import step_cost


def test_slopes_recover_a_power_law_and_need_three_dims():
    rows = [
        {"batch_size": 64, "dim": d, "method": m, "step_median_s": c * d**k}
        for m, c, k in (("relative", 1e-9, 2.0), ("ordinary", 1e-11, 3.0))
        for d in (512, 1024, 2048, 4096)
    ]
    got = {r["method"]: r["slope"] for r in step_cost.slopes(rows, 512, 4096)}
    assert got == pytest.approx({"relative": 2.0, "ordinary": 3.0})
    assert step_cost.slopes(rows, 2048, 4096) == []  # two dims: no fit


def test_ratios_are_ratios_of_medians():
    rows = [
        {"batch_size": 8, "dim": 16, "method": "relative", "step_median_s": 2.0, "grad_median_s": 1.5},
        {"batch_size": 8, "dim": 16, "method": "mlp", "step_median_s": 1.6, "grad_median_s": 1.0},
        {"batch_size": 8, "dim": 16, "method": "ordinary", "step_median_s": 20.0, "grad_median_s": 19.0},
    ]
    (entry,) = step_cost.ratios(rows)
    assert entry["relative/mlp step"] == pytest.approx(1.25)
    assert entry["relative/mlp grad"] == pytest.approx(1.5)
    assert entry["ordinary/relative"] == pytest.approx(10.0)


def test_tiny_run_end_to_end(tmp_path):
    out = tmp_path / "sc.json"
    result = step_cost.main(
        [
            "--dims",
            "8,16,32",
            "--batch-sizes",
            "4",
            "--repeats",
            "2",
            "--warmup",
            "1",
            "--methods",
            "relative,mlp,ordinary,jacobian",
            "--jacobian-max-dim",
            "16",
            "--slope-range",
            "8:32",
            "--out",
            str(out),
        ]
    )
    saved = json.loads(out.read_text())
    assert {r["method"] for r in saved["rows"]} == {"relative", "mlp", "ordinary", "jacobian"}
    assert not [r for r in saved["rows"] if r["method"] == "jacobian" and r["dim"] > 16]
    assert all(r["repeats"] == 2 and r["step_median_s"] > 0 for r in saved["rows"])
    assert {r["method"] for r in result["slopes"]} == {"relative", "mlp", "ordinary"}
    assert "relative/mlp step" in saved["ratios"][0] and "Machine:" in saved["markdown"]


def test_bad_method_list_is_rejected():
    with pytest.raises(SystemExit):
        step_cost.main(["--methods", "relative,newton"])


def test_a_registered_method_is_benchmarked_with_no_other_edit(tmp_path):
    import dataclasses

    from relgrad_core import get_method, method_names, register_method, unregister_method

    register_method(dataclasses.replace(get_method("mlp"), name="floor_copy", order=60))
    tiny = ["--dims", "8,16", "--batch-sizes", "4", "--repeats", "2", "--warmup", "1"]
    tiny += ["--jacobian-max-dim", "8"]
    try:
        everything = step_cost.main([*tiny, "--out", str(tmp_path / "all.json")])  # default: every method
        pair = ["--methods", "relative,floor_copy", "--out", str(tmp_path / "sc.json")]
        result = step_cost.main([*tiny, *pair])
    finally:
        unregister_method("floor_copy")
    assert {r["method"] for r in everything["rows"]} == set(method_names()) | {"floor_copy"}
    assert {r["method"] for r in result["rows"]} == {"relative", "floor_copy"}
    assert all(r["step_min_s"] <= r["step_median_s"] for r in result["rows"])
    assert "floor_copy/relative" in result["ratios"][0]
    assert "floor_copy" not in method_names()


def test_an_uninstalled_peer_is_named_with_its_extra(monkeypatch, capsys):
    from tests.core.conftest import hide_peers

    hide_peers(monkeypatch)
    with pytest.raises(SystemExit):
        step_cost.main(["--methods", "relative,zuko_lu"])
    assert "method 'zuko_lu' is not installed: it needs the zuko package" in capsys.readouterr().err
