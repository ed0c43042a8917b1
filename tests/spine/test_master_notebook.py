"""The master notebook, headless through ``pipeline run`` (real papermill runs, a real runtime daemon)."""

from __future__ import annotations

import json

import nbformat
import pytest

from pipeline_utils.notebooks import read_scraps
from tests.spine.conftest import DRAFT, EXAMPLES, ROOT

IRIS = ("--path-yml", DRAFT, "--path-model", EXAMPLES / "iris" / "iris_model",
        "--path-dependency", EXAMPLES / "iris" / "iris_kernel", "--eval-images", "0")


def test_master_notebook_has_a_parameters_cell():
    notebook = nbformat.read(ROOT / "notebooks" / "A_MLOps_Pipeline.ipynb", as_version=4)
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for name in ("PATH_MODEL", "PATH_DEPENDENCY", "DEPLOYMENT_NAME", "RESOURCE_CONFIGS", "THRESHOLDS_GENERIC",
                 "THRESHOLDS_SEGMENTATION"):
        assert name in tagged[0].source


@pytest.mark.slow
def test_pipeline_run_stages_deploys_and_keeps_the_executed_notebooks(cli_process, runtime, mlops_home):
    result = cli_process("pipeline", "run", *IRIS, "--json")
    assert result.code == 0, result.err
    run = json.loads(result.out)
    assert run["status"] == "succeeded" and run["kind"] == "pipeline"
    assert [nb["notebook"] for nb in run["notebooks"]] == ["A_MLOps_Pipeline.ipynb", "A2_Deploy.ipynb"]
    scraps = read_scraps(run["notebooks"][0]["path"])
    assert scraps["deployment_name"] == "iris-logistic"
    assert scraps["deployment_url"] == f"{runtime}/dlim/v1/inference/iris-logistic"
    document = json.loads(cli_process("config", "list", "--detail", "--json").out)
    assert document[scraps["model_asset_id"]]["wmla_deployment"]["deployment_url"] == scraps["deployment_url"]
    executed = nbformat.read(run["notebooks"][0]["path"], as_version=4)
    outputs = "".join(str(o) for c in executed.cells for o in c.get("outputs", []))
    assert "iris_model.zip" in outputs and "deployment_name: iris-logistic" in outputs
    assert "A1_Submit_Training" not in outputs and "no monitors in the metadata" in outputs


def test_pipeline_run_with_a_bad_draft_fails_with_one_line_before_any_notebook(cli_process, tmp_path, mlops_home):
    bad = tmp_path / "bad.yml"
    bad.write_text(DRAFT.read_text().replace("deployment_name: iris-logistic", "deployment_name: Iris Logistic"))
    result = cli_process("pipeline", "run", *IRIS[:1], bad, *IRIS[2:])
    assert result.code == 2
    assert result.err.strip().splitlines() == [result.err.strip()]
    assert result.err.startswith(f"error: --path-yml: {bad}: wmla_deployment.deployment_name: ")
    assert result.out == ""
    assert json.loads(cli_process("space", "list", "--json").out) == []
    assert json.loads(cli_process("runs", "list", "--json").out) == []


def test_the_redeploy_step_keeps_the_monitors_and_a3_updates_them_in_place():
    notebook = nbformat.read(ROOT / "notebooks" / "A_MLOps_Pipeline.ipynb", as_version=4)
    source = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    assert '"REPLACE_MONITORS": True' in source
    a3 = nbformat.read(ROOT / "notebooks" / "A3_Monitor_Configuration.ipynb", as_version=4)
    assert "REPLACE_MONITORS" in next(c.source for c in a3.cells if "parameters" in c.metadata.get("tags", []))
