"""Re-running ``pipeline run`` replaces the deployment but keeps its monitors and their history."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
pytestmark = pytest.mark.slow
cli = functools.partial(run_cli, timeout=300)


def iris_with_a_monitor(tmp_path: Path, home: Path) -> Path:
    """The iris draft with a generic_metrics monitor on a volume holding two predicted images."""
    draft = yaml.safe_load((EXAMPLES / "iris" / "deployment_metadata.draft.yml").read_text())
    draft["openscale_custom_metric_provider"] = {
        "generic_metrics": {
            "dir_gt": "eval/gt", "dir_pred": "eval/pred", "most_recent": 1, "volume_display_name": "IrisVolume",
            "thresholds": {"num_images_total_predicted": {"threshold": [1.0, "lower"]}},
        }
    }
    for folder in ("gt", "pred"):
        (home / "volumes" / "IrisVolume" / "eval" / folder).mkdir(parents=True)
        for index in range(2):
            Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(home / "volumes" / "IrisVolume" / "eval" / folder
                                                                 / f"{index}.png")
    path = tmp_path / "iris-monitored.yml"
    path.write_text(yaml.safe_dump(draft))
    return path


def test_running_twice_keeps_the_monitor_history(tmp_path, runtime, mlops_home):
    arguments = ("pipeline", "run", "--path-yml", iris_with_a_monitor(tmp_path, mlops_home), "--path-model",
                 EXAMPLES / "iris" / "iris_model", "--path-dependency", EXAMPLES / "iris" / "iris_kernel",
                 "--eval-images", "0")
    first = cli(*arguments)
    assert first.returncode == 0, first.stderr[-3000:]
    before = json.loads(cli("monitor", "history", "--name", "iris-logistic", "--json").stdout)["runs"]
    assert [run["state"] for run in before] == ["finished"]
    monitors = json.loads(cli("monitor", "list", "--name", "iris-logistic", "--json").stdout)
    second = cli(*arguments)
    assert second.returncode == 0, second.stderr[-3000:]
    after = json.loads(cli("monitor", "history", "--name", "iris-logistic", "--json").stdout)["runs"]
    assert before[0] in after and len(after) == 2
    assert json.loads(cli("monitor", "list", "--name", "iris-logistic", "--json").stdout) == monitors
