"""Inputs that kill or poison (issue 10, point 5): deeply nested JSON kills no kernel and sinks no payload-log batch."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from pipeline_utils.backends.local.runtime import client
from pipeline_utils.monitor import payloadstore

pytestmark = pytest.mark.slow

DEEP = b"[" * 100_000
ROW = [0.5] * 20


def nested(depth: int) -> bytes:
    """A valid JSON body nested ``depth`` levels deep."""
    return b"[" * depth + b"]" * depth


def serve(name: str, folder: Path, **options) -> tuple[str, int]:
    """Start ``folder`` as ``name`` with one kernel; its URL and the kernel's pid."""
    client.create(name, folder, profile={"kernel_min": 1, "kernel_max": 1}, **options)
    client.start(name)
    return client.deployment_url(name), kernel_pid(client.wait_ready(name))


def kernel_pid(view: dict) -> int:
    (kernel,) = [k for k in view["kernels"] if k["pid"]]
    return kernel["pid"]


def assert_one_line_400(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "nested deeper than" in error and "\n" not in error


@pytest.mark.parametrize("body", [DEEP, b'{"data": ' + nested(5000) + b"}"], ids=["bare", "in-data"])
def test_estimator_answers_400_and_keeps_serving(runtime: str, sklearn_folders: dict[str, Path], body: bytes) -> None:
    url, pid = serve("est", sklearn_folders["classification"])
    assert_one_line_400(httpx.post(url, content=body, timeout=30))
    assert httpx.post(url, json={"data": [ROW]}, timeout=30).status_code == 200
    assert kernel_pid(client.get("est")) == pid


def test_estimator_kserve_route_answers_400(runtime: str, sklearn_folders: dict[str, Path]) -> None:
    url, pid = serve("kest", sklearn_folders["classification"])
    infer = f"{runtime}/v2/models/kest/infer"
    assert_one_line_400(httpx.post(infer, content=DEEP, timeout=30))
    tensor = {"inputs": [{"name": "x", "shape": [1, 20], "datatype": "FP64", "data": ROW}]}
    assert httpx.post(infer, json=tensor, timeout=30).status_code == 200
    assert kernel_pid(client.get("kest")) == pid


def test_scoring_script_answers_400_and_keeps_serving(runtime: str, scoring_folder: Path) -> None:
    url, pid = serve("score", scoring_folder, kernel_filename="score.py")
    assert_one_line_400(httpx.post(url, content=DEEP, timeout=30))
    answer = httpx.post(url, json={"data": [ROW]}, timeout=30)
    assert answer.status_code == 200 and answer.json() == {"rows": 1, "pid": pid}


def test_edi_kernel_answers_400_and_keeps_serving(runtime: str, echo_kernel: Path) -> None:
    url, pid = serve("echo", echo_kernel)
    assert_one_line_400(httpx.post(url, content=DEEP, timeout=30))
    answer = httpx.post(url, json={"i": 1}, timeout=30)
    assert answer.status_code == 200 and answer.json()["pid"] == pid


def test_deep_request_does_not_sink_the_payload_log_batch(runtime: str, sklearn_folders: dict[str, Path]) -> None:
    url, pid = serve("plog", sklearn_folders["classification"])
    client.update_profile("plog", {"logging.payload": True})
    n = 150
    with httpx.Client(timeout=30) as http:
        for i in range(n // 2):
            assert http.post(url, json={"data": [ROW], "i": i}).status_code == 200
        assert http.post(url, content=nested(600)).status_code == 400
        for i in range(n // 2, n):
            assert http.post(url, json={"data": [ROW], "i": i}).status_code == 200
    assert kernel_pid(client.get("plog")) == pid
    client.stop("plog")
    records = payloadstore.payload_records("plog", limit=2 * n)
    assert len(records) == n + 1
    assert sorted(r["request"]["i"] for r in records if r["status"] == "200") == list(range(n))
    (deep,) = [r for r in records if r["status"] == "400"]
    assert deep["request"]["_bytes"] == 1200 and len(deep["request"]["_sha256"]) == 64
    assert client.get("plog")["payload_log"]["failed"] == 0
