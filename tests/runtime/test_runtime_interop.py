"""Open Inference Protocol (KServe v2) routes, Prometheus metrics, request size limits."""

from __future__ import annotations

from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest

from pipeline_utils.backends.local.runtime import client

pytestmark = pytest.mark.slow


@pytest.fixture
def estimator(runtime: str, sklearn_folders: dict[str, Path]) -> str:
    client.create("iris", sklearn_folders["classification"])
    client.start("iris")
    client.wait_ready("iris")
    return runtime


def test_kserve_v2_routes(estimator: str, sklearn_folders: dict[str, Path]) -> None:
    base = estimator
    assert httpx.get(f"{base}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{base}/v2/health/ready").status_code == 200
    meta = httpx.get(f"{base}/v2/models/iris").json()
    assert meta["name"] == "iris" and meta["inputs"][0]["shape"] == [-1, 20]
    assert httpx.get(f"{base}/v2/models/iris/ready").json() == {"name": "iris", "ready": True}
    rows = np.random.default_rng(1).normal(size=(2, 20))
    request = {
        "id": "r1",
        "inputs": [{"name": "input-0", "shape": [2, 20], "datatype": "FP32", "data": rows.ravel().tolist()}],
    }
    answer = httpx.post(f"{base}/v2/models/iris/infer", json=request)
    assert answer.status_code == 200
    body = answer.json()
    assert body["model_name"] == "iris" and body["id"] == "r1"
    output = body["outputs"][0]
    assert output["name"] == "predict_proba" and output["shape"] == [2, 2]
    expected = joblib.load(sklearn_folders["classification"] / "model.joblib").predict_proba(rows)
    np.testing.assert_allclose(np.reshape(output["data"], output["shape"]), expected, rtol=1e-5)
    versioned = httpx.post(f"{base}/v2/models/iris/versions/1/infer", json=request)
    assert versioned.status_code == 200
    bad = httpx.post(f"{base}/v2/models/iris/infer", json={"inputs": [{"shape": [1, 3], "data": [1, 2, 3]}]})
    assert bad.status_code == 400 and "inputSize=20" in bad.json()["error"]
    assert httpx.get(f"{base}/v2/models/nope/ready").status_code == 404


def test_v2_readiness_false_until_kernel_started(runtime: str, tmp_path: Path) -> None:
    from pipeline_utils.backends.local.runtime.client import create, start

    echo = Path(__file__).resolve().parent / "kernels" / "echo"
    create("slow", echo, custom_args={"ECHO_START_DELAY": "1.5"})
    start("slow")
    assert client.get("slow")["status"] == "starting"
    assert httpx.get(f"{runtime}/v2/health/ready").status_code == 503
    client.wait_ready("slow")
    assert httpx.get(f"{runtime}/v2/health/ready").status_code == 200


def test_metrics(estimator: str) -> None:
    for _ in range(3):
        client.invoke("iris", {"data": [[0.0] * 20]})
    client.invoke("iris", {"data": [[0.0] * 2]})
    text = httpx.get(f"{estimator}/metrics").text
    assert 'mlops_runtime_requests_total{deployment="iris",code="200"} 3' in text
    assert 'mlops_runtime_requests_total{deployment="iris",code="400"} 1' in text
    assert 'mlops_runtime_request_duration_seconds_bucket{deployment="iris",le="+Inf"} 4' in text
    assert 'mlops_runtime_request_duration_seconds_count{deployment="iris"} 4' in text
    assert 'mlops_runtime_kernels{deployment="iris"} 1' in text
    assert 'mlops_runtime_queue_depth{deployment="iris"} 0' in text


def test_request_body_limit_413(estimator: str) -> None:
    client.update_profile("iris", {"limits.max_request_bytes": 2000})
    small = client.invoke("iris", {"data": [[0.0] * 20]})
    assert small.status_code == 200
    big = httpx.post(client.deployment_url("iris"), content=b"x" * 5000)
    assert big.status_code == 413 and "2000" in big.json()["error"]
    chunked = httpx.post(client.deployment_url("iris"), content=iter([b"y" * 1500, b"y" * 1500]))
    assert chunked.status_code == 413
    assert client.invoke("iris", {"data": [[0.0] * 20]}).status_code == 200
