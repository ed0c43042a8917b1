"""Writes escape the volume (issue 10, point 6): the image kernel, served by the runtime, never follows a link out."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import httpx
import pytest

from pipeline_utils.backends.local.deploy import LocalTarget
from pipeline_utils.backends.local.runtime import client
from tests.example_ihc.helpers import DEPLOYMENT

pytestmark = pytest.mark.slow

SAMPLE = json.loads((DEPLOYMENT / "sample_request.json").read_text())
LOGS = "edi_deployments/ihc/edi_logs"


@pytest.fixture
def served(runtime: str, mlops_home: Path, trained: dict, tmp_path: Path) -> tuple[str, Path, str]:
    """The image kernel deployed as 'ihc' on the volume 'TestVolume' with one input image: URL, volume, pod."""
    folder = tmp_path / "submission"
    shutil.copytree(DEPLOYMENT, folder)
    shutil.copytree(trained["model_dir"], folder / "model")
    volume = mlops_home / "volumes" / "TestVolume"
    (volume / "inputs").mkdir(parents=True)
    (volume / "inputs" / "tile.png").write_bytes(base64.b64decode(SAMPLE["local_input_image"]))
    target = LocalTarget.from_environment(os.environ)
    args = {"VOLUME_DISPLAY_NAME": "TestVolume"}
    target.create("ihc", folder, {"kernel_min": 1, "kernel_max": 1, "task_execution_timeout": 60}, args)
    target.start("ihc", args)
    (kernel,) = target.wait_ready("ihc", timeout=60)["kernels"]
    return target.url("ihc"), volume, kernel["pod"]


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def on_volume(url: str, request_id: str) -> dict:
    answer = httpx.post(url, json={"img_path_on_pvc": "inputs/tile.png", "request_id": request_id}, timeout=60)
    assert answer.status_code == 200
    return answer.json()


def replace_with_link(path: Path, target: Path) -> None:
    """Plant a symbolic link at ``path`` (removing what was there) pointing to ``target``."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


@pytest.mark.parametrize(
    "planted",
    ["edi_deployments", "edi_deployments/ihc", "edi_deployments/ihc/r-1", "edi_deployments/ihc/r-1/output_dir"],
)
def test_link_on_the_output_path_is_refused(served: tuple[str, Path, str], tmp_path: Path, planted: str) -> None:
    url, volume, _ = served
    outside = tmp_path / "outside"
    outside.mkdir()
    replace_with_link(volume / planted, outside)
    answer = on_volume(url, "r-1")
    assert answer["status"] == "error" and planted in answer["msg"] and "symbolic link" in answer["msg"], answer
    assert files_under(outside) == []
    (volume / planted).unlink()
    assert on_volume(url, "r-2")["status"] == "finished"  # the kernel keeps serving


@pytest.mark.parametrize("planted", [LOGS, "log file"])
def test_link_on_the_log_path_is_refused(served: tuple[str, Path, str], tmp_path: Path, planted: str) -> None:
    url, volume, pod = served
    outside = tmp_path / "outside"
    outside.mkdir()
    if planted == "log file":
        planted = f"{LOGS}/{pod}_inference.log"
        replace_with_link(volume / planted, outside / "stolen.log")
    else:
        replace_with_link(volume / planted, outside)
    for request in (SAMPLE, {"img_path_on_pvc": "inputs/tile.png", "request_id": "r-3"}):
        answer = httpx.post(url, json=request, timeout=60).json()
        assert answer["status"] == "error" and planted in answer["msg"] and "symbolic link" in answer["msg"], answer
    assert files_under(outside) == []
    assert not (volume / "edi_deployments" / "ihc" / "r-3").exists()
    (volume / planted).unlink()
    assert httpx.post(url, json=SAMPLE, timeout=60).json()["status"] == "finished"
    assert client.get("ihc")["kernels"][0]["pod"] == pod
