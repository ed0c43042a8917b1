"""The CLI's commands with ``MLOPS_BACKEND=cpd`` against the fake CPD, one after the other as a user would run them:
stage, space, config, deploy (A2 through the runner), requests, train, and the errors of a misconfigured cluster."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from pipeline_utils.netutil import free_port
from tests.conftest import run_cli
from tests.cpd.helpers import files_holding
from tests.fakes.cpd import running_fake_cpd

pytest.importorskip("ibm_watsonx_ai", reason="the cpd extra (requirements-cpd.txt) is not installed")

ROOT = Path(__file__).resolve().parents[2]
IRIS = ROOT / "examples" / "iris"
SECRET = "custom-arg-secret-7781"
pytestmark = pytest.mark.slow


def test_fake_cpd_stage_space_config_deploy_and_train_commands(tmp_path: Path, mlops_home: Path) -> None:
    with running_fake_cpd(tmp_path / "fake") as fake:
        cli = functools.partial(run_cli, env=fake.env(), timeout=300)
        staged = cli("prepare", "stage", "--path-model", IRIS / "iris_model", "--path-dependency",
                     IRIS / "iris_kernel", "--path-yml", IRIS / "deployment_metadata.draft.yml")
        assert staged.returncode == 0, staged.stderr
        asset = staged.stdout.strip().splitlines()[-1]
        shown = json.loads(cli("space", "show", asset, "--json").stdout)
        assert shown["id"] == asset and shown["asset_type"] == "model" and len(shown["sha256"]) == 64
        (tmp_path / "got").mkdir()
        downloaded = cli("space", "download", asset, "--dest", tmp_path / "got")
        assert downloaded.returncode == 0, downloaded.stderr
        assert any((tmp_path / "got").iterdir())
        assert cli("config", "validate", "--path-yml", IRIS / "deployment_metadata.draft.yml").returncode == 0

        created = cli("deploy", "create", "--name", "iris", "--model-asset-id", asset, "--custom-arg",
                      f"IRIS_TOKEN={SECRET}", "--json")
        assert created.returncode == 0, created.stderr
        record = json.loads(created.stdout)
        assert record["deployment_url"] == f"{fake.url}/dlim/v1/inference/iris"
        entry = json.loads(cli("config", "list", "--detail", "--json").stdout)[asset]["wmla_deployment"]
        assert entry["deployment_name"] == "iris" and entry["deployment_url"] == record["deployment_url"]
        pinned = cli("space", "delete", asset)
        assert pinned.returncode == 4 and "iris" in pinned.stderr, "an asset an entry pins is not deleted"
        view = cli("deploy", "view", "--name", "iris", "--json")
        assert view.returncode == 0 and SECRET not in view.stdout

        updated = cli("deploy", "update", "--name", "iris")
        assert updated.returncode == 0, updated.stderr
        deleted = cli("deploy", "delete", "--name", "iris", "--remove-config")
        assert deleted.returncode == 0, deleted.stderr
        assert json.loads(cli("config", "list", "--json").stdout) == []

        scripts = tmp_path / "scripts"
        scripts.mkdir()
        (scripts / "main.py").write_text("import os\nprint('token', os.environ['TRAIN_TOKEN'], flush=True)\n")
        submitted = cli("train", "submit", "--scripts-dir", scripts, "--main-file", "main.py", "--msd-env",
                        f"TRAIN_TOKEN={SECRET}")
        assert submitted.returncode == 0, submitted.stderr
        assert "token ********" in submitted.stderr and SECRET not in submitted.stderr + submitted.stdout
        job = json.loads(cli("train", "list", "--json").stdout)[0]
        logs = cli("train", "logs", job["job_id"])
        assert logs.returncode == 0 and "token ********" in logs.stdout and SECRET not in logs.stdout

        assert files_holding([mlops_home, fake.state_dir], fake.api_key, SECRET) == []


@pytest.mark.parametrize(
    ("overrides", "code", "start"),
    [
        ({"CPD_API_KEY": "a-wrong-api-key-123"}, 2, "error: CPD_API_KEY: "),
        ({"CPD_URL": "https://127.0.0.1:{port}"}, 6, "error: "),
        ({"WML_SPACE_ID": "no-such-space"}, 3, "error: WML_SPACE_ID: "),
    ],
)
def test_fake_cpd_misconfiguration_is_one_line_with_its_exit_code(
    overrides: dict, code: int, start: str, tmp_path: Path
) -> None:
    with running_fake_cpd(tmp_path / "fake") as fake:
        env = fake.env(**{k: v.format(port=free_port()) for k, v in overrides.items()})
        result = run_cli("space", "list", env=env)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == code and len(lines) == 1 and lines[0].startswith(start), result.stderr
        assert "a-wrong-api-key-123" not in result.stderr and fake.api_key not in result.stderr
        url = env["CPD_URL"]
        assert url in lines[0]
