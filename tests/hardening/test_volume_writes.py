"""Point 6 with the image kernel's service called directly: links, FIFOs and hard links among the files it writes."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from tests.example_ihc.helpers import DEPLOYMENT

SAMPLE = json.loads((DEPLOYMENT / "sample_request.json").read_text())
OUT = "edi_deployments/ihc/r-1/output_dir"
LOG = "edi_deployments/ihc/edi_logs/pod-1_inference.log"


@pytest.fixture
def service(trained: dict, tmp_path: Path):
    """The kernel's service on a volume holding one input image (written to once, so its folders exist)."""
    import ihc_pixels
    import ihc_service

    volume = tmp_path / "volume"
    (volume / "inputs").mkdir(parents=True)
    (volume / "inputs" / "tile.png").write_bytes(base64.b64decode(SAMPLE["local_input_image"]))
    model = ihc_pixels.load_model(trained["model_dir"])
    served = ihc_service.IhcService(model, volume_root=volume, deployment="ihc", pod="pod-1")
    assert served.process({"img_path_on_pvc": "inputs/tile.png", "request_id": "r-1"})["status"] == "finished"
    return served


def assert_refused(answer: dict, path: str, why: str) -> None:
    assert answer["status"] == "error" and path in answer["msg"] and why in answer["msg"], answer


def test_link_at_an_output_file_is_refused(service, tmp_path: Path) -> None:
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"keep me")
    link = service.volume_root / OUT / "tile_Seg.png"
    link.unlink()
    link.symlink_to(outside)
    answer = service.process({"img_path_on_pvc": "inputs/tile.png", "request_id": "r-1"})
    assert_refused(answer, f"{OUT}/tile_Seg.png", "symbolic link")
    assert outside.read_bytes() == b"keep me"


def test_hard_link_at_an_output_file_is_refused(service, tmp_path: Path) -> None:
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"keep me")
    target = service.volume_root / OUT / "tile.png"
    target.unlink()
    os.link(outside, target)
    answer = service.process({"img_path_on_pvc": "inputs/tile.png", "request_id": "r-1"})
    assert_refused(answer, f"{OUT}/tile.png", "hard links")
    assert outside.read_bytes() == b"keep me"


@pytest.mark.timeout(30)
def test_fifo_at_the_log_file_is_refused_without_blocking(service) -> None:
    log = service.volume_root / LOG
    log.unlink()
    os.mkfifo(log)
    assert_refused(service.process(SAMPLE), LOG, "not a plain file")


def test_log_lines_that_cannot_be_written_safely_are_dropped(service, tmp_path: Path) -> None:
    outside = tmp_path / "stolen.log"
    log = service.volume_root / LOG
    log.unlink()
    log.symlink_to(outside)
    assert service.volume_log("r-9", "a line") == f"refused to write the volume log {LOG}: {LOG} is a symbolic link"
    assert not outside.exists()
