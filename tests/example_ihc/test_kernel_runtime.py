"""The image kernel, unmodified, served by the real local runtime: good and bad requests over HTTP."""

from __future__ import annotations

import base64
import json
import os
import shutil

import httpx
import pytest

from pipeline_utils.backends.local.deploy import LocalTarget
from tests.example_ihc.helpers import DEPLOYMENT

pytestmark = pytest.mark.slow


@pytest.fixture
def served(runtime, mlops_home, trained, tmp_path):
    """The IHC deployment folder with the trained model under model/, deployed as 'ihc' with a volume."""
    folder = tmp_path / "submission"
    shutil.copytree(DEPLOYMENT, folder)
    shutil.copytree(trained["model_dir"], folder / "model")
    volume = mlops_home / "volumes" / "TestVolume"
    (volume / "inputs").mkdir(parents=True)
    target = LocalTarget.from_environment(os.environ)
    target.create("ihc", folder, {"kernel_min": 1, "kernel_max": 1, "task_execution_timeout": 60},
                  {"VOLUME_DISPLAY_NAME": "TestVolume"})
    target.start("ihc", {"VOLUME_DISPLAY_NAME": "TestVolume"})
    target.wait_ready("ihc", timeout=60)
    return target.url("ihc"), volume


def test_serialized_and_volume_requests_and_bad_ones(served):
    url, volume = served
    sample = json.loads((DEPLOYMENT / "sample_request.json").read_text())
    answer = httpx.post(url, json=sample, timeout=60).json()
    assert answer["status"] == "finished" and answer["request_id"] == sample["request_id"]
    assert {name.split("_", 1)[-1] for name in answer["images"]} >= {"Seg.png", "SegOverlaid.png", "Hema.png"}
    (volume / "inputs" / "tile.png").write_bytes(base64.b64decode(sample["local_input_image"]))
    (volume / "inputs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    on_volume = httpx.post(url, json={"img_path_on_pvc": "inputs/tile.png", "request_id": "r-1"}, timeout=60).json()
    assert on_volume["status"] == "finished"
    assert (volume / "edi_deployments" / "ihc" / "r-1" / "output_dir" / "tile_Seg.png").is_file()
    assert list((volume / "edi_deployments" / "ihc" / "edi_logs").glob("*_inference.log"))
    bad_requests = [
        {},
        {"local_input_image": sample["local_input_image"], "images_to_return": "what"},
        {"local_input_image": sample["local_input_image"], "tile_size": 512.123},
        {"local_input_image": sample["local_input_image"], "tile_size": 0},
        {"img_path_on_pvc": "../../../etc/passwd"},
        {"img_path_on_pvc": "inputs/broken.png"},
        {"local_input_image": base64.b64encode(b"corrupt").decode()},
    ]
    for payload in bad_requests:
        response = httpx.post(url, json=payload, timeout=60)
        assert response.status_code == 200, payload
        body = response.json()
        assert body["status"] == "error" and body["msg"], payload
    assert httpx.post(url, json=sample, timeout=60).json()["status"] == "finished"
