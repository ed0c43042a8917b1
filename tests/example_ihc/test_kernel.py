"""``ihc_kernel/kernel.py``'s MatchKernel driven through a STAND-IN ``redhareapi`` (see conftest).

The end-to-end path through the real local runtime is tested elsewhere; here we check that the kernel
finds its model and volume from custom args / environment, answers through the task context, handles
batched contexts, and keeps serving after bad requests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import synthetic
from PIL import Image

from tests.example_ihc.helpers import DEPLOYMENT


@pytest.fixture
def model_repo(trained, tmp_path):
    """A REDHARE_MODEL_PATH-like deployment folder with the model folder inside it."""
    repo = tmp_path / "repo" / "ihc-demo-20240101"
    shutil.copytree(trained["model_dir"], repo / "model")
    return repo


def invoke(kernel, request) -> dict:
    standin = sys.modules["redhareapi"]
    task = standin.TaskContext(json.dumps(request) if not isinstance(request, str) else request)
    kernel.on_task_invoke(task)
    return json.loads(task.output)


def test_kernel_from_environment(kernel_module, model_repo, volume, monkeypatch):
    monkeypatch.setenv("REDHARE_MODEL_PATH", str(model_repo))
    monkeypatch.setenv("REDHARE_MODEL_NAME", "ihc-demo")
    monkeypatch.setenv("MSD_POD_NAME", "ihc-demo-abc12")
    monkeypatch.setenv("VOLUME_DISPLAY_NAME", "ihc-volume")
    kernel = kernel_module.MatchKernel()
    kernel.on_kernel_start(sys.modules["redhareapi"].KernelContext())
    assert kernel.service.volume_root == volume.resolve()
    assert kernel.service.model.meta["model_path"].startswith(str(model_repo))

    image, _ = synthetic.make_tile(size=96, seed=1, index=0)
    Image.fromarray(image).save(volume / "in.png")
    answer = invoke(kernel, {"img_path_on_pvc": "in.png", "request_id": "k1"})
    assert answer["status"] == "finished"
    assert (volume / "edi_deployments" / "ihc-demo" / "k1" / "output_dir" / "in_Seg.png").is_file()

    for bad in ({"local_input_image": "x", "tile_size": 0}, {"images_to_return": "what"}, "{oops"):
        assert invoke(kernel, bad)["status"] == "error"
    assert invoke(kernel, {"local_input_image": synthetic.png_base64(image)})["status"] == "finished"

    kernel.on_kernel_shutdown()
    log = (volume / "edi_deployments" / "ihc-demo" / "edi_logs" / "ihc-demo-abc12_inference.log").read_text()
    assert "kernel started" in log and "[k1]" in log and "kernel shutting down" in log


def test_custom_args_as_module_names_win_over_environment(kernel_module, trained, volume, tmp_path, monkeypatch):
    monkeypatch.setenv("REDHARE_MODEL_PATH", str(tmp_path / "no-model-here"))
    monkeypatch.setenv("VOLUME_DIR", str(tmp_path / "no-such-volume"))
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "no-model-either"))
    kernel_module.MODEL_DIR = str(trained["model_dir"])  # what `--custom-arg MODEL_DIR=...` provides
    kernel_module.VOLUME_DIR = str(volume)
    kernel = kernel_module.MatchKernel()
    kernel.on_kernel_start(None)
    assert kernel.service.volume_root == volume.resolve()
    assert kernel.service.deployment == "ihc"  # no REDHARE_MODEL_NAME: a default name


def test_batched_task_contexts_are_all_answered(kernel_module, trained, monkeypatch):
    monkeypatch.setenv("MODEL_DIR", str(trained["model_dir"]))
    kernel = kernel_module.MatchKernel()
    kernel.on_kernel_start(None)
    standin = sys.modules["redhareapi"]
    image, _ = synthetic.make_tile(size=64, seed=2, index=0)
    second = standin.TaskContext(json.dumps({"local_input_image": synthetic.png_base64(image), "request_id": "b2"}))
    first = standin.TaskContext(json.dumps({"request_id": "b1"}), following=second)
    kernel.on_task_invoke(first)
    assert json.loads(first.output)["status"] == "error"
    assert json.loads(second.output)["request_id"] == "b2"
    assert json.loads(second.output)["status"] == "finished"


def test_kernel_without_a_model_fails_to_start_clearly(kernel_module, tmp_path, monkeypatch):
    monkeypatch.delenv("MODEL_DIR", raising=False)
    monkeypatch.delenv("REDHARE_MODEL_PATH", raising=False)
    with pytest.raises(RuntimeError, match="no model location"):
        kernel_module.MatchKernel().on_kernel_start(None)
    monkeypatch.setenv("REDHARE_MODEL_PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="pixel_classifier.joblib"):
        kernel_module.MatchKernel().on_kernel_start(None)


def test_kernel_file_runs_as_a_script_from_another_folder(standin_dir, model_repo, volume, tmp_path):
    """``python kernel.py`` imports its sibling modules from its own folder, whatever the cwd."""
    deployed = tmp_path / "submission"
    shutil.copytree(DEPLOYMENT, deployed, ignore=shutil.ignore_patterns("__pycache__"))
    sample = (deployed / "sample_request.json").read_text()
    requests = "\n".join([json.dumps(json.loads(sample)), json.dumps({"tile_size": 512.123}), ""])
    env = {
        **os.environ,
        "PYTHONPATH": str(standin_dir),
        "REDHARE_MODEL_PATH": str(model_repo),
        "REDHARE_MODEL_NAME": "ihc-demo",
        "MSD_POD_NAME": "pod-x",
        "VOLUME_DISPLAY_NAME": "ihc-volume",
    }
    proc = subprocess.run(
        [sys.executable, str(deployed / "kernel.py")],
        input=requests,
        env=env,
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    answers = [json.loads(line[len("ANSWER:") :]) for line in proc.stdout.splitlines() if line.startswith("ANSWER:")]
    assert [a["status"] for a in answers] == ["finished", "error"]
    assert answers[0]["request_id"] == "sample-request" and "local_SegOverlaid.png" in answers[0]["images"]
    assert "tile_size must be an integer" in answers[1]["msg"]
    assert (volume / "edi_deployments" / "ihc-demo" / "edi_logs" / "pod-x_inference.log").is_file()
