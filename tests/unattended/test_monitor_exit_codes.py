"""``monitor run`` exits 0 when every threshold holds, 10 on a violation, 11 on a failed evaluation (11 wins)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli as cli

ROOT = Path(__file__).resolve().parents[2]
IRIS_DRAFT = ROOT / "examples" / "iris" / "deployment_metadata.draft.yml"
pytestmark = pytest.mark.slow

DEFINITIONS = """
from pipeline_utils.monitor import EvaluationFailed


def count(config, volume):
    return {"count": 3.0}


count.metrics = ["count"]


def broken(config, volume):
    raise EvaluationFailed("the ground truth is unreadable")


broken.metrics = ["count"]
"""


def monitor(definition: str, lower_limit: float) -> dict:
    return {"definition": definition, "dir_gt": "gt", "dir_pred": "pred", "most_recent": 1,
            "volume_display_name": "ExitCodes", "thresholds": {"count": {"threshold": [lower_limit, "lower"]}}}


@pytest.fixture
def deployment(tmp_path: Path, mlops_home: Path) -> str:
    """Monitors of a staged entry: one holding, one violated, one whose evaluation fails."""
    functions = tmp_path / "definitions.py"
    functions.write_text(textwrap.dedent(DEFINITIONS))
    draft = yaml.safe_load(IRIS_DRAFT.read_text())
    draft["wmla_deployment"]["deployment_name"] = "exit-codes"
    draft["openscale_custom_metric_provider"] = {
        "holding": monitor(f"{functions}:count", 1.0),
        "violated": monitor(f"{functions}:count", 5.0),
        "failing": monitor(f"{functions}:broken", 1.0),
    }
    path = tmp_path / "draft.yml"
    path.write_text(yaml.safe_dump(draft))
    (mlops_home / "volumes" / "ExitCodes" / "gt").mkdir(parents=True)
    staged = cli("prepare", "stage", "--path-model", ROOT / "examples" / "iris" / "iris_model", "--path-dependency",
                 ROOT / "examples" / "iris" / "iris_kernel", "--path-yml", path, "-f")
    assert staged.returncode == 0, staged.stderr
    created = cli("monitor", "create", "--name", "exit-codes")
    assert created.returncode == 0, created.stderr
    return "exit-codes"


def test_exit_codes_tell_holding_violated_and_failed_apart(deployment):
    holding = cli("monitor", "run", "--name", deployment, "--monitor", "holding")
    assert holding.returncode == 0, holding.stderr
    violated = cli("monitor", "run", "--name", deployment, "--monitor", "violated", "--json")
    assert violated.returncode == 10, violated.stderr
    assert json.loads(violated.stdout)[0]["issues"] == 1
    assert violated.stderr.strip().splitlines()[-1] == "exit-codes: 1 threshold violation(s) (exit 10)"
    failing = cli("monitor", "run", "--name", deployment, "--monitor", "failing", "--json")
    assert failing.returncode == 11, failing.stderr
    assert json.loads(failing.stdout)[0]["state"] == "failed"
    both = cli("monitor", "run", "--name", deployment)
    assert both.returncode == 11, both.stderr
    assert "evaluation failed for failing" in both.stderr.strip().splitlines()[-1]
    history = json.loads(cli("monitor", "history", "--name", deployment, "--json").stdout)
    assert len(history["runs"]) == 6
