"""The master notebook, headless through ``pipeline run`` (a real papermill execution)."""

from __future__ import annotations

import json

import nbformat

from pipeline_utils.notebooks import read_scraps
from tests.spine.conftest import DRAFT, ROOT


def test_master_notebook_has_a_parameters_cell():
    notebook = nbformat.read(ROOT / "notebooks" / "A_MLOps_Pipeline.ipynb", as_version=4)
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for name in ("PATH_MODEL", "PATH_DEPENDENCY", "DEPLOYMENT_NAME", "RESOURCE_CONFIGS", "THRESHOLDS_GENERIC"):
        assert name in tagged[0].source


def test_pipeline_run_stages_the_example_and_keeps_the_executed_notebook(cli_process, mlops_home):
    result = cli_process("pipeline", "run", "--path-yml", DRAFT, "--json")
    assert result.code == 0, result.err
    run = json.loads(result.out)
    assert run["status"] == "succeeded" and run["kind"] == "pipeline"
    master = run["notebooks"][0]
    assert master["notebook"] == "A_MLOps_Pipeline.ipynb"
    scraps = read_scraps(master["path"])
    assert scraps["deployment_name"] == "iris-logistic"
    document = json.loads(cli_process("config", "list", "--detail", "--json").out)
    assert list(document) == [scraps["model_asset_id"]]
    executed = nbformat.read(master["path"], as_version=4)
    outputs = "".join(str(o) for c in executed.cells for o in c.get("outputs", []))
    assert "model.zip" in outputs and "deployment_name: iris-logistic" in outputs


def test_pipeline_run_with_a_bad_draft_fails_with_one_line(cli_process, tmp_path, mlops_home):
    bad = tmp_path / "bad.yml"
    bad.write_text(DRAFT.read_text().replace("deployment_name: iris-logistic", "deployment_name: Iris Logistic"))
    result = cli_process("pipeline", "run", "--path-yml", bad)
    assert result.code == 1
    last = result.err.strip().splitlines()[-1]
    assert last.startswith("error: A_MLOps_Pipeline.ipynb failed in cell") and "deployment_name" in last
    assert json.loads(cli_process("space", "list", "--json").out) == []
