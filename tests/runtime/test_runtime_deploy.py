"""The deploy target interface on the local runtime and WMLA-style submission folders."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from pipeline_utils.backends import get_deploy_target
from pipeline_utils.backends.local.deploy import LocalTarget
from pipeline_utils.deploy.base import DeploymentTarget
from pipeline_utils.deploy.submission import (
    build_submission_folder,
    sample_request,
    unpack_dependency,
)
from pipeline_utils.errors import PipelineError


def _zip_folder(folder: Path, archive: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in folder.rglob("*"):
            if path.is_file():
                zf.write(path, prefix + str(path.relative_to(folder)))
    return archive


def test_submission_folder_from_dependency_zip(tmp_path: Path, echo_kernel: Path) -> None:
    archive = _zip_folder(echo_kernel, tmp_path / "dep.zip", prefix="echo/")
    unpacked = unpack_dependency(archive, tmp_path / "unzipped")
    assert (unpacked / "kernel.py").is_file()
    folder = build_submission_folder(unpacked, tmp_path / "submission", "echo-svc", tag="v1")
    spec = json.loads((folder / "model.json").read_text())
    assert spec["name"] == "echo-svc" and spec["kernel_path"] == "kernel.py"
    assert spec["readme"] == "README.md" and spec["tag"] == "v1" and spec["weight_path"] == "./"
    assert sample_request(folder) is None
    (folder / "sample_request.json").write_text('{"a": 1}')
    assert sample_request(folder) == {"a": 1}
    with pytest.raises(PipelineError, match="kernel file other.py not found"):
        build_submission_folder(unpacked, tmp_path / "sub2", "x", kernel_filename="other.py")


def test_unpack_refuses_zip_slip(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../escape.txt", "x")
    with pytest.raises(PipelineError, match="leaves the extraction folder"):
        unpack_dependency(archive, tmp_path / "out")
    (tmp_path / "plain.txt").write_text("no zip")
    with pytest.raises(PipelineError, match="not a zip archive"):
        unpack_dependency(tmp_path / "plain.txt", tmp_path / "out2")


@pytest.mark.slow
def test_local_target_flow(runtime: str, echo_kernel: Path, tmp_path: Path) -> None:
    target = get_deploy_target("local")
    assert isinstance(target, DeploymentTarget) and isinstance(target, LocalTarget)
    folder = build_submission_folder(echo_kernel, tmp_path / "submission", "flow")
    (folder / "sample_request.json").write_text('{"sample": true}')
    resource_configs = {
        "enable_gpus": False,
        "n_cpus": 1,
        "memory_allocation": 1024,
        "kernel_min": 1,
        "kernel_max": 2,
        "kernel_delay_release_time": 30,
        "task_execution_timeout": 60,
        "schedule_interval": None,
    }
    target.create("flow", folder, resource_configs, {"CPD_USERNAME": "me"})
    assert target.exists("flow")
    target.start("flow")
    target.wait_ready("flow")
    status, answer = target.predict("flow", sample_request(folder))
    assert status == 200 and answer["echo"] == {"sample": True}
    assert target.url("flow") == f"{runtime}/dlim/v1/inference/flow"
    assert target.get_profile("flow")["policy"]["kernel_max"] == 2
    assert target.update_profile("flow", {"kernel_max": 3})["policy"]["kernel_max"] == 3
    description = json.loads((Path(target.get("flow")["folder"]) / "model.json").read_text())
    assert description["name"] == "flow"
    assert target.stop("flow")["status"] == "stopped"
    target.delete("flow")
    assert not target.exists("flow")
    with pytest.raises(PipelineError, match="no deploy target named 'kubernetes' is installed"):
        get_deploy_target("kubernetes")


@pytest.mark.slow
def test_delete_removes_the_kernel_logs_so_a_new_deployment_of_that_name_starts_clean(
    runtime: str, echo_kernel: Path
) -> None:
    target = get_deploy_target("local")
    target.create("logged", echo_kernel)
    target.start("logged")
    target.wait_ready("logged")
    first_pods = {kernel["pod"] for kernel in target.get("logged")["kernels"]}
    assert any(line.endswith("echo kernel started") for line in target.logs("logged"))
    folder = Path(target.get("logged")["logs"])
    assert folder.is_dir()
    target.delete("logged")
    assert not folder.exists()
    target.create("logged", echo_kernel)
    assert target.logs("logged") == []
    target.start("logged")
    target.wait_ready("logged")
    pods = {line.split(":", 1)[0] for line in target.logs("logged")}
    assert pods == {kernel["pod"] for kernel in target.get("logged")["kernels"]} and not pods & first_pods
