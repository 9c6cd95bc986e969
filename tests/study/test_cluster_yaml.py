"""cluster.yaml and cluster-local.yaml validate against Ray's own cluster-launcher schema."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster-local.yaml"])
def test_cluster_config_validates(name: str) -> None:
    raw = yaml.safe_load((REPO / name).read_text())
    config = prepare_config(raw)  # fills Ray's defaults, as `ray up` does
    validate_config(config)  # jsonschema against ray/autoscaler/ray-schema.json
    assert any("pip install -q -e" in c for c in config["setup_commands"])
    assert any("mlflow server" in c for c in config["head_start_ray_commands"])


def test_aws_cluster_has_a_cpu_head_and_autoscaling_gpu_workers() -> None:
    config = prepare_config(yaml.safe_load((REPO / "cluster.yaml").read_text()))
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"] == {"CPU": 0}
    worker = types["gpu_worker"]
    assert worker["min_workers"] == 0 < worker["max_workers"]
    torch_first = [i for i, c in enumerate(config["setup_commands"]) if "install -q torch" in c]
    project = [i for i, c in enumerate(config["setup_commands"]) if "install -q -e" in c]
    assert torch_first and project and torch_first[0] < project[0]


def test_a_broken_config_is_rejected() -> None:
    raw = yaml.safe_load((REPO / "cluster.yaml").read_text())
    raw["max_workers"] = "many"
    with pytest.raises(Exception, match="many"):
        validate_config(prepare_config(raw))
