"""The product path a user takes: a real scaling sweep, then its report, from the real MLflow runs."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from study.cli import main
from tests.study.conftest import runs_of, write_preset


def test_scaling_sweep_with_report(ray_session, store: dict[str, str], tmp_path: Path, capsys) -> None:
    preset = write_preset(
        tmp_path,
        scaling={"methods": ["relative", "ordinary", "mlp"], "dims": [4, 8, 16, 32], "lrs": [0.001]},
    )
    out = tmp_path / "report"
    code = main(
        [
            "scaling",
            "--preset",
            preset,
            "--name",
            "e2e",
            "--tracking-uri",
            store["uri"],
            "--storage-path",
            store["storage"],
            "--report",
            "--report-dir",
            str(out),
            "--predict-dims",
            "100,23552",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert str(out / "report.html") in printed and "relgrad ui" in printed

    html = (out / "report.html").read_text()
    assert "e2e" in html
    # images are embedded, so the file is self-contained
    images = re.findall(r'<img[^>]+src="([^"]+)"', html)
    assert images and all(src.startswith("data:image/") for src in images)
    png = base64.b64decode(images[0].split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"

    # the CLI prints the headline first, and the predictions sit at the D the user named
    assert "Headline" in printed or "relative:" in printed
    predicted = pd.read_csv(out / "tables" / "predictions.csv")
    assert {"relative", "ordinary", "mlp"} <= set(predicted["method"])
    assert set(predicted["dim"]) == {100, 23552}

    # the exponent table was fitted from the sweep's own runs: one row per method, over 4 distinct D
    fits = pd.concat(pd.read_csv(p) for p in (out / "tables").glob("*.csv") if "exponent" in p.name)
    assert {"relative", "ordinary", "mlp"} <= set(fits["method"])

    # the order from the runs' counted work, on 4 distinct D: exact whatever the timings on a shared machine
    verdicts = pd.read_csv(out / "tables" / "verdicts_runtime.csv").set_index("method")
    assert verdicts["order_counted"].to_dict() == {
        "relative": "quadratic",
        "ordinary": "cubic",
        "mlp": "quadratic",
    }
    assert (verdicts["order"] == verdicts["order_counted"]).all() and "order_timed" in verdicts
    rates = pd.read_csv(out / "tables" / "achieved_rate.csv")
    assert (rates["gflops"] > 0).all() and (rates["pct_of_peak"] > 0).all()  # the sweep measured its peak
    assert "matrix-multiply peak" in printed

    # and the report landed as artifacts of the sweep's parent run
    (parent,) = [r for r in runs_of(store["uri"], "e2e") if r.data.tags.get("role") == "parent"]
    client = MlflowClient(tracking_uri=store["uri"])
    (folder,) = client.list_artifacts(parent.info.run_id)  # the report's folder, nothing else
    assert folder.is_dir
    names = {Path(a.path).name for a in client.list_artifacts(parent.info.run_id, folder.path)}
    assert {"report.html", "report.md", "tables", "figures"} <= names
