"""``pipeline run`` checks every input before it trains: one line naming the option, exit 2, nothing recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli as cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
IRIS_DRAFT = EXAMPLES / "iris" / "deployment_metadata.draft.yml"


def bad_draft(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yml"
    path.write_text(IRIS_DRAFT.read_text().replace("deployment_name: iris-logistic", "deployment_name: Iris Logistic"))
    return path


def unnamed_draft(tmp_path: Path) -> Path:
    path = tmp_path / "unnamed.yml"
    path.write_text(IRIS_DRAFT.read_text().replace("deployment_name: iris-logistic", "deployment_name: null"))
    return path


CASES = {
    "model without dependency": (lambda t: ["--path-model", EXAMPLES / "iris" / "iris_model"], "--path-dependency",
                                 "required"),
    "model without draft": (lambda t: ["--path-model", EXAMPLES / "iris" / "iris_model", "--path-dependency",
                                       EXAMPLES / "iris" / "iris_kernel"], "--path-yml", "required with --path-model"),
    "missing model": (lambda t: ["--path-yml", IRIS_DRAFT, "--path-model", t / "nope", "--path-dependency",
                                 EXAMPLES / "iris" / "iris_kernel"], "--path-model", "no such file or folder"),
    "dependency is a file": (lambda t: ["--path-yml", IRIS_DRAFT, "--path-model", EXAMPLES / "iris" / "iris_model",
                                        "--path-dependency", EXAMPLES / "iris" / "iris_kernel" / "kernel.py"],
                             "--path-dependency", "not a folder"),
    "invalid draft": (lambda t: ["--path-yml", bad_draft(t)], "--path-yml", "deployment_name"),
    "draft without deployment name": (lambda t: ["--path-yml", unnamed_draft(t)], "--path-yml", "deployment name"),
    "missing draft": (lambda t: ["--path-yml", t / "nope.yml"], "--path-yml", "no such file"),
    "missing scripts dir": (lambda t: ["--scripts-dir", t / "nope"], "--scripts-dir", "no such file or folder"),
    "missing main file": (lambda t: ["--scripts-dir", EXAMPLES / "ihc", "--main-file", "training/nope.py"],
                          "--main-file", "training/nope.py"),
    "main file outside the scripts dir": (lambda t: ["--scripts-dir", EXAMPLES / "ihc", "--main-file",
                                                     "../model/README.md"], "--main-file", "not a file in"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_input_is_refused_before_anything_runs(case, tmp_path, mlops_home):
    arguments, option, words = CASES[case]
    result = cli("pipeline", "run", *arguments(tmp_path))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {option}: ") and words in lines[0], lines
    assert json.loads(cli("runs", "list", "--json").stdout) == []
    assert json.loads(cli("train", "list", "--json").stdout) == []
    assert not (mlops_home / "runs").exists() or not any((mlops_home / "runs").iterdir())


def test_the_notebook_checks_its_inputs_before_training(mlops_home):
    from pipeline_utils.notebooks import get_run, run_notebook

    result = run_notebook("A_MLOps_Pipeline", {"TRAIN": False, "PATH_MODEL": "", "PATH_YML": str(IRIS_DRAFT)})
    assert not result.ok and "BadInput: PATH_MODEL: required" in result.error
    assert [nb.notebook for nb in get_run(result.run_id).notebooks] == ["A_MLOps_Pipeline.ipynb"]
