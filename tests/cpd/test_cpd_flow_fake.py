"""The README's main command with ``MLOPS_BACKEND=cpd`` against the fake CPD: A1 on WMLA, staging into the WML space,
A2 on EDI, requests, A3 on OpenScale with the generated metrics provider; then the CLI commands on what it made."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.cpd.helpers import files_holding
from tests.fakes.cpd import running_fake_cpd

pytest.importorskip("ibm_watsonx_ai", reason="the cpd extra (requirements-cpd.txt) is not installed")
pytest.importorskip("ibm_watson_openscale", reason="the cpd extra (requirements-cpd.txt) is not installed")

ROOT = Path(__file__).resolve().parents[2]
DRAFT = ROOT / "examples" / "ihc" / "deployment_metadata.draft.yml"
NAME = "ihc-segmentation"
pytestmark = pytest.mark.slow


def test_fake_cpd_whole_flow_and_commands(tmp_path: Path, mlops_home: Path) -> None:
    with running_fake_cpd(tmp_path / "fake", token_ttl=10, volumes=["IHCVolume"]) as fake:  # tokens expire mid-flow
        cli = functools.partial(run_cli, env=fake.env(), timeout=300)
        result = cli("pipeline", "run", "--path-yml", DRAFT, "--eval-images", "4")
        assert result.returncode == 0, result.stderr[-3000:]
        lines = result.stdout.splitlines()
        for step in ("A_MLOps_Pipeline", "A1_Submit_Training", "A2_Deploy", "A3_Monitor_Configuration"):
            assert any(line.startswith(f"{step}.ipynb: succeeded in") for line in lines), result.stdout
        assert f"deployment URL: {fake.url}/dlim/v1/inference/{NAME}" in lines
        assert any(line.startswith("segmentation_metrics: run ") and line.endswith(": 0 issues") for line in lines)

        called = {(r["method"], r["path"].split("/")[-1] if "/predictions" in r["path"] else r["path"])
                  for r in fake.requests()}
        assert ("POST", "/platform/rest/deeplearning/v1/execs/") in called
        assert ("POST", "/dlim/v1/deployment/model") in called
        assert ("POST", "predictions") in called
        assert any(method == "POST" and path.endswith("/measurements") for method, path in called)

        volume = fake.state_dir / "volumes" / "IHCVolume" / "model_eval"
        predicted = sorted(p.name for p in (volume / "model_images").glob("*.png"))
        assert predicted == sorted(p.name for p in (volume / "gt_images").glob("*.png")) and len(predicted) == 4

        status = json.loads(cli("monitor", "status", "--name", NAME, "--json").stdout)
        assert {s["monitor_id"]: (s["latest_run"]["state"], s["latest_run"]["issues"]) for s in status} == {
            "generic_metrics": ("finished", 4), "segmentation_metrics": ("finished", 0)}  # 4 images, at least 5 wanted
        rerun = cli("monitor", "run", "--name", NAME, "--monitor", "generic_metrics", "--json")
        assert rerun.returncode == 10 and json.loads(rerun.stdout)[0]["issues"] == 4, rerun.stderr
        history = json.loads(cli("monitor", "history", "--name", NAME, "--json").stdout)["runs"]
        assert sum(run["monitor_id"] == "generic_metrics" for run in history) == 2

        deployments = json.loads(cli("deploy", "list", "--json").stdout)
        assert [(d["name"], d["status"]) for d in deployments] == [(NAME, "ready")]
        assert cli("deploy", "update-profile", "--name", NAME, "--set", "policy.kernel_max=3").returncode == 0
        profile = json.loads(cli("deploy", "view", "--name", NAME, "--json").stdout)
        assert "3" in json.dumps(profile) and profile["status"] == "ready"
        assets = json.loads(cli("space", "list", "--json").stdout)
        assert sorted(a["asset_type"] for a in assets) == ["dependency", "model"]
        entries = json.loads(cli("config", "list", "--json").stdout)
        assert [e["deployment_name"] for e in entries] == [NAME]
        jobs = json.loads(cli("train", "list", "--json").stdout)
        assert [j["status"] for j in jobs] == ["finished"]
        assert cli("deploy", "stop", "--name", NAME).returncode == 0
        assert json.loads(cli("deploy", "list", "--json").stdout)[0]["status"] != "ready"

        deleted = cli("deploy", "delete", "--name", NAME, "--remove-monitor")
        assert deleted.returncode == 0, deleted.stderr
        assert json.loads(cli("deploy", "list", "--json").stdout) == []
        assert json.loads(cli("monitor", "list", "--json").stdout) == []

        assert files_holding([mlops_home, fake.state_dir], fake.api_key) == []
