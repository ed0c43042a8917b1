"""Pinned versions through the runtime: ``n`` then deploy, restaging a deployed entry, ``deploy update`` in place
(and its rollback), ``deploy logs``."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import ROOT
from tests.conftest import run_cli as cli

EXAMPLES = ROOT / "examples"
DRAFT = EXAMPLES / "iris" / "deployment_metadata.draft.yml"
ROW = {"instances": [[6.3, 3.3, 6.0, 2.5]]}
pytestmark = pytest.mark.slow


def stage_args(model: Path, dependency: Path = EXAMPLES / "iris" / "iris_kernel", yml: Path = DRAFT) -> list[str]:
    return [str(a) for a in ("prepare", "stage", "--path-model", model, "--path-dependency", dependency,
                             "--path-yml", yml)]


def stage(model: Path, dependency: Path = EXAMPLES / "iris" / "iris_kernel", yml: Path = DRAFT):
    result = cli(*stage_args(model, dependency, yml), "-f")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1], result


def document() -> dict:
    return json.loads(cli("config", "list", "--detail", "--json").stdout)


def label(url: str) -> str:
    return httpx.post(url, json=ROW, timeout=30).json()["predictions"][0]["label"]


def model_copy(tmp_path: Path) -> Path:
    model = tmp_path / "src" / "iris_model"
    shutil.copytree(EXAMPLES / "iris" / "iris_model", model)
    return model


def relabel(model: Path) -> None:
    spec = json.loads((model / "model.json").read_text())
    spec["classes"] = [name.upper() for name in spec["classes"]]
    (model / "model.json").write_text(json.dumps(spec))


def test_answering_n_then_deploy_create_deploys_the_new_asset(runtime, tmp_path):
    pexpect = pytest.importorskip("pexpect")
    first, _ = stage(EXAMPLES / "iris" / "iris_model")
    model = model_copy(tmp_path)
    relabel(model)
    unnamed = yaml.safe_load(DRAFT.read_text())
    unnamed["wmla_deployment"]["deployment_name"] = None
    yml = tmp_path / "unnamed.yml"
    yml.write_text(yaml.safe_dump(unnamed))
    child = pexpect.spawn(sys.executable, [str(ROOT / "run_pipeline.py"), *stage_args(model, yml=yml)], cwd=str(ROOT),
                          timeout=60, encoding="utf-8")
    for _ in range(2):
        child.expect(r"Overwrite it")
        child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    (second,) = set(document()) - {first}
    result = cli("deploy", "create", "--name", "iris-upper", "--model-asset-id", second, "--json")
    assert result.returncode == 0, result.stderr
    assert label(json.loads(result.stdout)["deployment_url"]) == "VIRGINICA"
    wmla = document()[second]["wmla_deployment"]
    assert wmla["deployment_name"] == "iris-upper", "deploy create --name fills a draft's null name"
    assert wmla["deployed"]["model_asset_id"] == second and wmla["deployed"]["model_asset_version"] == 1
    assert wmla["deployed"]["dependency_asset_id"] == wmla["dependency_asset_id"]
    assert document()[first]["wmla_deployment"]["deployment_url"] is None


def test_restage_keeps_what_runs_and_deploy_update_moves_it_in_place(runtime, tmp_path):
    model = model_copy(tmp_path)
    key, _ = stage(model)
    created = cli("deploy", "create", "--name", "iris", "--model-asset-id", key, "--json")
    assert created.returncode == 0, created.stderr
    url = json.loads(created.stdout)["deployment_url"]
    assert cli("deploy", "update-profile", "--name", "iris", "--set", "policy.kernel_max=3").returncode == 0
    first = document()[key]["wmla_deployment"]["deployed"]
    assert (first["model_asset_id"], first["model_asset_version"], first["dependency_asset_version"]) == (key, 1, 1)

    relabel(model)
    _, restaged = stage(model)
    assert "deployment 'iris' still runs" in restaged.stderr and "deploy update --name iris" in restaged.stderr
    entry = document()[key]
    assert entry["model_asset_version"] == 2 and entry["wmla_deployment"]["deployed"] == first
    assert label(url) == "virginica"

    moved = cli("deploy", "update", "--name", "iris", "--json")
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout)["deployment_url"] == url
    assert label(url) == "VIRGINICA"
    deployed = document()[key]["wmla_deployment"]["deployed"]
    assert (deployed["model_asset_version"], deployed["dependency_asset_version"]) == (2, 2)
    assert deployed["deployed_at"] > first["deployed_at"]
    rows = json.loads(cli("deploy", "list", "--json").stdout)
    assert [(r["name"], r["kernel_max"]) for r in rows] == [("iris", 3)], "updated in place, profile kept"

    logs = cli("deploy", "logs", "--name", "iris", "--tail", "3")
    assert logs.returncode == 0 and 0 < len(logs.stdout.splitlines()) <= 3
    everything = cli("deploy", "logs", "--name", "iris").stdout
    assert everything.count("loaded model iris-logistic") >= 2 and everything.startswith("iris-")
    assert cli("deploy", "logs", "--name", "nope").returncode == 3


def test_an_update_whose_kernel_fails_rolls_back_to_the_running_version(runtime, tmp_path):
    dependency = tmp_path / "src" / "deployment"
    shutil.copytree(EXAMPLES / "iris" / "iris_kernel", dependency)
    key, _ = stage(EXAMPLES / "iris" / "iris_model", dependency)
    created = cli("deploy", "create", "--name", "iris", "--model-asset-id", key, "--json")
    assert created.returncode == 0, created.stderr
    url = json.loads(created.stdout)["deployment_url"]
    before = document()[key]["wmla_deployment"]["deployed"]
    kernel = dependency / "kernel.py"
    kernel.write_text(kernel.read_text().replace(
        "    def on_kernel_start(self, kernel_context):\n",
        "    def on_kernel_start(self, kernel_context):\n        raise RuntimeError('broken build')\n"))
    stage(EXAMPLES / "iris" / "iris_model", dependency)
    failed = cli("deploy", "update", "--name", "iris")
    assert failed.returncode != 0
    assert "the new version did not start" in failed.stderr and "the previous one serves again" in failed.stderr
    assert label(url) == "virginica"
    assert document()[key]["wmla_deployment"]["deployed"] == before


def test_deploy_update_refuses_unknown_deployments_before_running_anything(runtime):
    key, _ = stage(EXAMPLES / "iris" / "iris_model")
    missing = cli("deploy", "update", "--name", "iris-logistic")
    assert missing.returncode == 3 and "no deployment named 'iris-logistic' to update" in missing.stderr
    unknown = cli("deploy", "update", "--name", "nobody")
    assert unknown.returncode == 3 and "no metadata entry has deployment name 'nobody'" in unknown.stderr
    assert json.loads(cli("runs", "list", "--json").stdout) == []


def test_deploy_update_with_another_entry_hands_the_deployment_over_to_it(runtime, tmp_path):
    first, _ = stage(EXAMPLES / "iris" / "iris_model")
    created = cli("deploy", "create", "--name", "iris", "--model-asset-id", first, "--json")
    assert created.returncode == 0, created.stderr
    url = json.loads(created.stdout)["deployment_url"]
    model = tmp_path / "src" / "model-v2"
    shutil.copytree(EXAMPLES / "iris" / "iris_model", model)
    relabel(model)
    unnamed = yaml.safe_load(DRAFT.read_text())
    unnamed["wmla_deployment"]["deployment_name"] = None
    yml = tmp_path / "unnamed.yml"
    yml.write_text(yaml.safe_dump(unnamed))
    second, _ = stage(model, yml=yml)
    moved = cli("deploy", "update", "--name", "iris", "--model-asset-id", second)
    assert moved.returncode == 0, moved.stderr
    assert label(url) == "VIRGINICA"
    entries = document()
    assert entries[second]["wmla_deployment"]["deployment_name"] == "iris"
    assert entries[second]["wmla_deployment"]["deployed"]["model_asset_id"] == second
    assert entries[first]["wmla_deployment"]["deployment_name"] is None
    assert entries[first]["wmla_deployment"]["deployed"] is None
    named = cli("config", "delete", "--name", "iris")
    assert named.returncode == 0 and second in named.stderr
