"""``monitor`` commands end to end: A3 through the runner, measurements in SQLite, status as the seed prints it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.conftest import run_cli as cli

ROOT = Path(__file__).resolve().parents[2]
DRAFT = ROOT / "examples" / "ihc" / "deployment_metadata.draft.yml"
pytestmark = pytest.mark.slow


def mask(kind: str) -> np.ndarray:
    image = np.zeros((32, 32, 3), np.uint8)
    if kind == "good":
        image[:16, :16] = (255, 0, 0)
        image[16:, 16:] = (0, 0, 255)
    return image


def stage_command(tmp_path: Path, mutate=None):
    draft = yaml.safe_load(DRAFT.read_text())
    if mutate:
        mutate(draft)
    path = tmp_path / "draft.yml"
    path.write_text(yaml.safe_dump(draft))
    return cli("prepare", "stage", "--path-model", ROOT / "examples" / "iris" / "iris_model", "--path-dependency",
               ROOT / "examples" / "iris" / "iris_kernel", "--path-yml", path, "-f")


def stage(tmp_path: Path, mutate=None) -> str:
    result = stage_command(tmp_path, mutate)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def fill_volume(home: Path, predictions: str, count: int = 5) -> None:
    volume = home / "volumes" / "IHCVolume" / "model_eval"
    for folder, kind in (("gt_images", "good"), ("model_images", predictions)):
        (volume / folder).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            Image.fromarray(mask(kind)).save(volume / folder / f"tile_{index}.png")


def test_create_records_subscription_runs_first_evaluation_and_refuses_twice(tmp_path, mlops_home):
    asset = stage(tmp_path)
    fill_volume(mlops_home, "good")
    created = cli("monitor", "create", "--name", "ihc-segmentation", "--json")
    assert created.returncode == 0, created.stderr
    record = json.loads(created.stdout)
    entry = json.loads(cli("config", "list", "--detail", "--json").stdout)[asset]
    assert entry["openscale_subscription_id"] == record["openscale_subscription_id"]
    assert sorted(record["monitors"]) == ["generic_metrics", "segmentation_metrics"]
    assert record["issues"] == {"generic_metrics": 0, "segmentation_metrics": 0}
    again = cli("monitor", "create", "--name", "ihc-segmentation")
    assert again.returncode == 1 and "monitor already configured" in again.stderr.strip().splitlines()[-1]
    listed = json.loads(cli("monitor", "list", "--json").stdout)
    assert len(listed) == 2


def test_violations_show_in_status_and_history_plots(tmp_path, mlops_home):
    stage(tmp_path)
    fill_volume(mlops_home, "good")
    assert cli("monitor", "create", "--name", "ihc-segmentation").returncode == 0
    fill_volume(mlops_home, "empty")
    runs = json.loads(cli("monitor", "run", "--name", "ihc-segmentation", "--monitor", "segmentation_metrics",
                          "--json").stdout)
    assert runs[0]["state"] == "finished" and runs[0]["issues"] > 0
    status = cli("monitor", "status", "--name", "ihc-segmentation")
    assert status.returncode == 0
    assert f"segmentation_metrics: run {runs[0]['run_id']}" in status.stdout
    assert "Dice_positive" in status.stdout and "lower limit 0.6" in status.stdout
    history = json.loads(cli("monitor", "history", "--name", "ihc-segmentation", "--json").stdout)
    assert len(history["runs"]) == 3
    for plot in history["plots"]:
        assert Path(plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli("monitor", "delete", "--name", "ihc-segmentation").returncode == 0
    assert json.loads(cli("monitor", "list", "--json").stdout) == []


def test_a_threshold_on_an_unknown_metric_is_refused_before_anything_is_stored(tmp_path, mlops_home):
    def bad(draft):
        draft["openscale_custom_metric_provider"]["segmentation_metrics"]["thresholds"]["sharpness"] = {
            "threshold": [1.0, "lower"]}

    result = stage_command(tmp_path, bad)
    assert result.returncode == 2
    assert "segmentation_metrics.thresholds.sharpness" in result.stderr.strip().splitlines()[-1]
    assert json.loads(cli("config", "list", "--json").stdout) == []


def test_a_missing_volume_fails_create_and_stores_nothing(tmp_path, mlops_home):
    asset = stage(tmp_path)
    result = cli("monitor", "create", "--name", "ihc-segmentation")
    assert result.returncode == 1
    assert "volume_display_name: unknown volume 'IHCVolume'" in result.stderr.strip().splitlines()[-1]
    assert json.loads(cli("monitor", "list", "--json").stdout) == []
    assert json.loads(cli("config", "list", "--detail", "--json").stdout)[asset]["openscale_subscription_id"] is None


def test_rerunning_a3_with_replace_keeps_the_history(tmp_path, mlops_home):
    from pipeline_utils.monitor import monitor_history
    from pipeline_utils.notebooks import run_notebook

    stage(tmp_path)
    fill_volume(mlops_home, "good")
    assert cli("monitor", "create", "--name", "ihc-segmentation").returncode == 0
    before = [run.run_id for run in monitor_history("ihc-segmentation")]
    again = run_notebook("A3_Monitor_Configuration", {"DEPLOYMENT_NAME": "ihc-segmentation", "REPLACE_MONITORS": True})
    assert again.ok, again.error
    after = [run.run_id for run in monitor_history("ihc-segmentation")]
    assert len(before) == 2 and len(after) == 4 and set(before) <= set(after)


def test_unknown_deployment_is_a_clear_error(mlops_home):
    result = cli("monitor", "create", "--name", "nobody")
    assert result.returncode == 1 and "no metadata entry has deployment name 'nobody'" in result.stderr
