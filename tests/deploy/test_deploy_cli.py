"""``deploy`` commands end to end: A2 through the runner, a real runtime daemon, real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import nbformat
import pytest

from tests.conftest import run_cli as cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
pytestmark = pytest.mark.slow


def stage(model=EXAMPLES / "iris" / "iris_model", dependency=EXAMPLES / "iris" / "iris_kernel",
          yml=EXAMPLES / "iris" / "deployment_metadata.draft.yml") -> str:
    result = cli("prepare", "stage", "--path-model", model, "--path-dependency", dependency, "--path-yml", yml, "-f")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def entry(model_asset_id: str) -> dict:
    return json.loads(cli("config", "list", "--detail", "--json").stdout)[model_asset_id]


def test_deploy_create_serves_records_and_keeps_custom_args_secret(runtime, mlops_home):
    asset = stage()
    result = cli("deploy", "create", "--name", "iris", "--model-asset-id", asset, "--custom-arg",
                 "CPD_API_KEY=k-7781-secret", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["deployment_url"] == f"{runtime}/dlim/v1/inference/iris"
    wmla = entry(asset)["wmla_deployment"]
    assert wmla["deployment_url"] == record["deployment_url"] and wmla["deployment_name"] == "iris"
    answer = httpx.post(record["deployment_url"], json={"instances": [[6.3, 3.3, 6.0, 2.5]]}).json()
    assert answer["predictions"][0]["label"] == "virginica"
    executed = nbformat.read(record["notebook"], as_version=4)
    outputs = "".join(str(o) for c in executed.cells for o in c.get("outputs", []))
    assert "setosa" in outputs and "model.json" in outputs
    rows = json.loads(cli("deploy", "list", "--json").stdout)
    assert rows[0]["name"] == "iris" and rows[0]["status"] == "ready" and rows[0]["requests_served"] >= 2
    for path in mlops_home.rglob("*"):
        if path.is_file():
            assert b"k-7781-secret" not in path.read_bytes(), path


def test_name_in_use_and_asset_already_deployed_fail_like_the_seed(runtime, mlops_home):
    asset = stage()
    assert cli("deploy", "create", "--name", "iris", "--model-asset-id", asset).returncode == 0
    runs = len(json.loads(cli("runs", "list", "--json").stdout))
    again = cli("deploy", "create", "--name", "iris-2", "--model-asset-id", asset)
    assert again.returncode == 4 and "already deployed as 'iris'" in again.stderr.strip().splitlines()[-1]
    other = stage(model=EXAMPLES / "iris" / "iris_kernel" / "sample_request.json")
    taken = cli("deploy", "create", "--name", "iris", "--model-asset-id", other)
    assert taken.returncode == 4 and f"deployment name 'iris' belongs to metadata entry {asset}" in taken.stderr
    bad = cli("deploy", "create", "--name", "Bad_Name", "--model-asset-id", other)
    assert bad.returncode == 2 and "lowercase letters" in bad.stderr
    for refused in (again, taken, bad):
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert [r["name"] for r in json.loads(cli("deploy", "list", "--json").stdout)] == ["iris"]
    assert entry(other)["wmla_deployment"]["deployment_url"] is None
    assert len(json.loads(cli("runs", "list", "--json").stdout)) == runs, "refused before any notebook ran"


def test_profile_stop_start_delete(runtime):
    asset = stage()
    assert cli("deploy", "create", "--name", "iris", "--model-asset-id", asset).returncode == 0
    profile = json.loads(cli("deploy", "update-profile", "--name", "iris", "--set", "policy.kernel_max=4",
                             "--json").stdout)
    assert profile["policy"]["kernel_max"] == 4
    assert json.loads(cli("deploy", "view", "--name", "iris", "--json").stdout)["profile"]["policy"]["kernel_max"] == 4
    assert cli("deploy", "stop", "--name", "iris").returncode == 0
    url = entry(asset)["wmla_deployment"]["deployment_url"]
    assert httpx.post(url, json={"instances": [[5.1, 3.5, 1.4, 0.2]]}).status_code == 503
    assert cli("deploy", "start", "--name", "iris").returncode == 0
    assert httpx.post(url, json={"instances": [[5.1, 3.5, 1.4, 0.2]]}).status_code == 200
    bad = cli("deploy", "update-profile", "--name", "iris", "--set", "kernel_max")
    assert bad.returncode != 0 and "--set" in bad.stderr
    assert cli("deploy", "delete", "--name", "iris").returncode == 0
    assert entry(asset)["wmla_deployment"]["deployment_url"] is None
    assert json.loads(cli("deploy", "list", "--json").stdout) == []
    missing = cli("deploy", "delete", "--name", "iris")
    assert missing.returncode == 3 and "no deployment named 'iris'" in missing.stderr


def test_volume_predictions_that_fail_are_an_error_not_a_silent_gap(runtime, mlops_home):
    from pipeline_utils.deploy.requests import predict_volume_folder
    from pipeline_utils.errors import PipelineError

    asset = stage()
    assert cli("deploy", "create", "--name", "iris", "--model-asset-id", asset).returncode == 0
    inputs = mlops_home / "volumes" / "V" / "inputs"
    inputs.mkdir(parents=True)
    (inputs / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(PipelineError, match=r"1 of 1 volume requests to iris failed; first: a.png: HTTP 200"):
        predict_volume_folder("iris", "V", "inputs", dir_pred="preds")
    assert not any((mlops_home / "volumes" / "V" / "preds").iterdir())


def test_delete_with_remove_monitor_forgets_url_and_subscription(runtime, mlops_home):
    from PIL import Image

    asset = stage(yml=EXAMPLES / "ihc" / "deployment_metadata.draft.yml")
    assert cli("deploy", "create", "--name", "ihc-segmentation", "--model-asset-id", asset).returncode == 0
    volume = mlops_home / "volumes" / "IHCVolume" / "model_eval"
    for folder in ("gt_images", "model_images"):
        (volume / folder).mkdir(parents=True)
        for index in range(3):
            Image.new("RGB", (8, 8), (255, 0, 0)).save(volume / folder / f"t{index}.png")
    assert cli("monitor", "create", "--name", "ihc-segmentation").returncode == 0
    assert entry(asset)["openscale_subscription_id"]
    removed = cli("deploy", "delete", "--name", "ihc-segmentation", "--remove-monitor")
    assert removed.returncode == 0 and "deleted monitor(s) generic_metrics, segmentation_metrics" in removed.stderr
    assert json.loads(cli("monitor", "list", "--json").stdout) == []
    assert entry(asset)["openscale_subscription_id"] is None
    assert entry(asset)["wmla_deployment"]["deployment_url"] is None
    gone = cli("deploy", "create", "--name", "ihc-segmentation", "--model-asset-id", asset)
    assert gone.returncode == 0, gone.stderr
    assert cli("deploy", "delete", "--name", "ihc-segmentation", "--remove-config").returncode == 0
    assert asset not in json.loads(cli("config", "list", "--detail", "--json").stdout)
