"""Plain kernel settings beside secret custom args: through the CLI, the A2 and master notebooks, a runtime
restart, and the image kernel that reads its volume name from one."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pipeline_utils.backends.local.runtime.client import default_client
from tests.conftest import run_cli as cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ECHO_KERNEL = ROOT / "tests" / "runtime" / "kernels" / "echo"
IRIS_DRAFT = EXAMPLES / "iris" / "deployment_metadata.draft.yml"
SECRET = "k-5521-secret-value"
pytestmark = pytest.mark.slow


def stage(dependency: Path) -> str:
    result = cli("prepare", "stage", "--path-model", EXAMPLES / "iris" / "iris_model", "--path-dependency",
                 dependency, "--path-yml", IRIS_DRAFT, "-f")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def restart_runtime() -> None:
    """Stop the runtime as a user would, then let the next command start it again."""
    assert cli("runtime", "stop").returncode == 0
    default_client().ensure_daemon()


def wait_status(name: str, wanted: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        rows = {row["name"]: row for row in json.loads(cli("deploy", "list", "--json").stdout)}
        if rows[name]["status"] == wanted:
            return rows[name]
        assert time.monotonic() < deadline, f"{name} is {rows[name]['status']}, wanted {wanted}"
        time.sleep(0.2)


def test_cli_settings_reach_the_kernel_show_in_view_and_survive_a_restart(runtime, mlops_home):
    asset = stage(ECHO_KERNEL)
    result = cli("deploy", "create", "--name", "echo", "--model-asset-id", asset, "--kernel-setting",
                 "VOLUME_DISPLAY_NAME=vol-a", "--kernel-setting", "THREADS=2", "--custom-arg",
                 f"CPD_API_KEY={SECRET}", "--json")
    assert result.returncode == 0, result.stderr
    url = json.loads(result.stdout)["deployment_url"]
    names = ["VOLUME_DISPLAY_NAME", "THREADS", "CPD_API_KEY"]
    answer = httpx.post(url, json={"show_args": names}).json()
    expected = {"VOLUME_DISPLAY_NAME": "vol-a", "THREADS": "2", "CPD_API_KEY": SECRET}
    assert answer["globals"] == expected and answer["env"] == expected
    view = json.loads(cli("deploy", "view", "--name", "echo", "--json").stdout)
    assert view["settings"] == {"VOLUME_DISPLAY_NAME": "vol-a", "THREADS": "2"}
    assert view["custom_arg_names"] == ["CPD_API_KEY"]
    table = cli("deploy", "view", "--name", "echo").stdout
    assert "settings" in table and "vol-a" in table and SECRET not in table
    restart_runtime()
    assert wait_status("echo", "needs-custom-args")["name"] == "echo"
    assert cli("deploy", "start", "--name", "echo", "--custom-arg", f"CPD_API_KEY={SECRET}").returncode == 0
    answer = httpx.post(url, json={"show_args": names}).json()
    assert answer["globals"] == expected, "settings kept by the runtime, custom args given again"
    for path in mlops_home.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_bad_settings_are_one_line_errors_before_anything_runs(mlops_home):
    bad_name = cli("deploy", "create", "--name", "echo", "--model-asset-id", "x", "--kernel-setting", "1BAD=v")
    assert bad_name.returncode == 2
    assert bad_name.stderr.strip().splitlines() == [
        "error: --kernel-setting: expected NAME=VALUE with NAME a valid identifier (got '1BAD')"
    ]
    both = cli("deploy", "create", "--name", "echo", "--model-asset-id", "x", "--kernel-setting", "TOKEN=plain",
               "--custom-arg", f"TOKEN={SECRET}")
    assert both.returncode == 2
    lines = both.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --kernel-setting: TOKEN is given both as a kernel setting")
    assert SECRET not in both.stderr
    assert json.loads(cli("runs", "list", "--json").stdout) == []


def test_a2_refuses_settings_it_cannot_hand_over(mlops_home):
    from pipeline_utils.deploy.steps import kernel_settings
    from pipeline_utils.errors import BadInput

    assert kernel_settings({"VOLUME_DISPLAY_NAME": "IHCVolume"}, {"TOKEN": SECRET}) == {
        "VOLUME_DISPLAY_NAME": "IHCVolume"
    }
    for settings, problem in [
        ({"not an identifier": "x"}, "KERNEL_SETTINGS: name 'not an identifier' is not a valid Python identifier"),
        ({"THREADS": 4}, "KERNEL_SETTINGS: THREADS: the value must be text (got int)"),
        (["VOLUME"], "KERNEL_SETTINGS: must be a mapping of NAME to value (got list)"),
        ({"TOKEN": "plain"}, "KERNEL_SETTINGS: TOKEN is given both as a kernel setting and as a custom arg"),
    ]:
        with pytest.raises(BadInput) as caught:
            kernel_settings(settings, {"TOKEN": SECRET})
        assert str(caught.value).startswith(problem)


def test_pipeline_run_passes_the_volume_as_a_setting_so_a_restart_needs_nothing(runtime, mlops_home):
    result = cli("pipeline", "run", "--path-yml", IRIS_DRAFT, "--path-model", EXAMPLES / "iris" / "iris_model",
                 "--path-dependency", EXAMPLES / "iris" / "iris_kernel", "--eval-images", "0", "--json")
    assert result.returncode == 0, result.stderr
    view = json.loads(cli("deploy", "view", "--name", "iris-logistic", "--json").stdout)
    assert view["settings"] == {"VOLUME_DISPLAY_NAME": "IHCVolume"} and view["custom_arg_names"] == []
    restart_runtime()
    wait_status("iris-logistic", "ready")
    answer = httpx.post(view["url"], json={"instances": [[6.3, 3.3, 6.0, 2.5]]})
    assert answer.status_code == 200 and answer.json()["predictions"][0]["label"] == "virginica"


@pytest.fixture(scope="module")
def ihc_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image example's model, trained once by its training script as a job would run it."""
    base = tmp_path_factory.mktemp("ihc_training")
    env = {**os.environ, "DATA_DIR": str(base / "data"), "OUTPUT_DIR": str(base / "model")}
    done = subprocess.run([sys.executable, str(EXAMPLES / "ihc" / "training" / "train.py")], env=env, cwd=base,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return base / "model"


def test_the_image_kernel_finds_its_volume_through_a_setting_after_a_restart(runtime, mlops_home, ihc_model, tmp_path):
    from pipeline_utils.backends.local.deploy import LocalTarget

    folder = tmp_path / "submission"
    shutil.copytree(EXAMPLES / "ihc" / "ihc_kernel", folder)
    shutil.copytree(ihc_model, folder / "model")
    volume = mlops_home / "volumes" / "TestVolume"
    (volume / "inputs").mkdir(parents=True)
    sample = json.loads((folder / "sample_request.json").read_text())
    (volume / "inputs" / "tile.png").write_bytes(base64.b64decode(sample["local_input_image"]))
    target = LocalTarget.from_environment(os.environ)
    target.create("ihc", folder, {"kernel_min": 1, "kernel_max": 1, "task_execution_timeout": 60},
                  settings={"VOLUME_DISPLAY_NAME": "TestVolume"})
    target.start("ihc")
    target.wait_ready("ihc", timeout=60)
    for request_id in ("before-restart", "after-restart"):
        answer = httpx.post(target.url("ihc"), json={"img_path_on_pvc": "inputs/tile.png", "request_id": request_id},
                            timeout=60).json()
        assert answer["status"] == "finished", answer
        assert (volume / "edi_deployments" / "ihc" / request_id / "output_dir" / "tile_Seg.png").is_file()
        if request_id == "before-restart":
            restart_runtime()
            target.wait_ready("ihc", timeout=60)
