"""The README's main command on the image example: train → stage → deploy → predict → monitors → status."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import nbformat
import pytest

from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
cli = functools.partial(run_cli, timeout=300)


def test_the_whole_flow_on_the_image_example(runtime, mlops_home):
    result = cli("pipeline", "run", "--path-yml", ROOT / "examples" / "ihc" / "deployment_metadata.draft.yml")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    for step in ("A_MLOps_Pipeline", "A1_Submit_Training", "A2_Deploy", "A3_Monitor_Configuration"):
        assert any(line.startswith(f"{step}.ipynb: succeeded in") for line in lines), result.stdout
    url = f"{runtime}/dlim/v1/inference/ihc-segmentation"
    assert f"deployment URL: {url}" in lines
    assert any(line.startswith("segmentation_metrics: run ") and line.endswith(": 0 issues") for line in lines)
    folder = Path(lines[-1].removeprefix("executed notebooks: "))
    master = nbformat.read(folder / "A_MLOps_Pipeline.ipynb", as_version=4)
    html = "".join(o.get("data", {}).get("text/html", "") for c in master.cells for o in c.get("outputs", []))
    assert html.count("data:image/png;base64,") >= 4
    volume = mlops_home / "volumes" / "IHCVolume" / "model_eval"
    predicted = sorted(p.name for p in (volume / "model_images").iterdir())
    assert predicted == sorted(p.name for p in (volume / "gt_images").iterdir()) and len(predicted) == 8
    status = json.loads(cli("monitor", "status", "--name", "ihc-segmentation", "--json").stdout)
    assert {s["monitor_id"]: s["latest_run"]["state"] for s in status} == {
        "generic_metrics": "finished", "segmentation_metrics": "finished"}
    logs = list((mlops_home / "volumes" / "IHCVolume" / "edi_deployments" / "ihc-segmentation" / "edi_logs").iterdir())
    assert logs and logs[0].name.endswith("_inference.log")
    history = json.loads(cli("monitor", "history", "--name", "ihc-segmentation", "--json").stdout)["runs"]
    again = cli("pipeline", "run", "--path-yml", ROOT / "examples" / "ihc" / "deployment_metadata.draft.yml",
                "--eval-images", "0")
    assert again.returncode == 0, again.stderr[-2000:]
    kept = json.loads(cli("monitor", "history", "--name", "ihc-segmentation", "--json").stdout)["runs"]
    assert all(run in kept for run in history) and len(kept) > len(history)
