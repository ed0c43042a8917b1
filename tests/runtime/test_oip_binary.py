"""The Open Inference Protocol's binary tensor data extension, driven by the real Triton and KServe clients."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException, triton_to_np_dtype

from pipeline_utils import oip
from pipeline_utils.backends.local.runtime import client
from pipeline_utils.monitor import payload, payloadstore

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
INTEROP_PYTHON = Path(os.environ.get("MLOPS_INTEROP_PYTHON") or ROOT / ".venv-interop" / "bin" / "python")
NUMERIC = ("FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "BOOL")

# Run by the KServe client's own interpreter (requirements-interop.txt): one request per case, answers as JSON.
KSERVE_SCRIPT = """
import asyncio, json, sys
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput


async def main(spec):
    rest = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
    answers = {}
    try:
        for case in spec["cases"]:
            data = np.asarray(spec["rows"]).astype(case["numpy"])
            tensor = InferInput("input-0", list(data.shape), case["datatype"])
            tensor.set_data_from_numpy(data, binary_data=case["binary_in"])
            outputs = [RequestedOutput(spec["output"], {"binary_data": case["binary_out"]})]
            request = InferRequest(spec["model"], [tensor], request_id=case["name"], request_outputs=outputs)
            headers = {}
            response = await rest.infer(spec["url"], request, model_name=spec["model"], response_headers=headers)
            output = response.outputs[0]
            answers[case["name"]] = {
                "id": response.id,
                "name": output.name,
                "shape": list(output.shape),
                "values": output.as_numpy().tolist(),
                "header_length": headers.get("inference-header-content-length"),
                "content_type": headers.get("content-type"),
            }
    finally:
        await rest.close()
    print(json.dumps(answers))


asyncio.run(main(json.load(sys.stdin)))
"""


@pytest.fixture
def estimator(runtime: str, sklearn_folders: dict[str, Path]) -> str:
    """A classification deployment ``clf`` (predict_proba) with payload logging on; the daemon's base URL."""
    client.create("clf", sklearn_folders["classification"], profile={"logging": {"payload": True}})
    client.start("clf")
    client.wait_ready("clf")
    return runtime


def _model(sklearn_folders: dict[str, Path], job: str = "classification"):
    return joblib.load(sklearn_folders[job] / "model.joblib")


def _binary(header: dict, *tensors: bytes) -> tuple[bytes, dict[str, str]]:
    """A binary-extension request body and its headers."""
    text = json.dumps(header).encode()
    return text + b"".join(tensors), {"Inference-Header-Content-Length": str(len(text))}


def _input(shape: list[int], datatype: str, size: int, name: str = "input-0") -> dict:
    return {"name": name, "shape": shape, "datatype": datatype, "parameters": {"binary_data_size": size}}


def test_triton_http_client_with_its_defaults(estimator: str, sklearn_folders: dict[str, Path]) -> None:
    client.create("reg", sklearn_folders["regression"])
    client.start("reg")
    client.wait_ready("reg")
    model = _model(sklearn_folders)
    rows = np.random.default_rng(3).normal(size=(3, 20))
    server = triton.InferenceServerClient(url=estimator.removeprefix("http://"))
    try:
        assert "binary_tensor_data" in server.get_server_metadata()["extensions"]
        assert server.is_server_live() and server.is_model_ready("clf")
        assert server.get_model_metadata("clf")["inputs"][0]["shape"] == [-1, 20]

        tensor = triton.InferInput("input-0", [3, 20], "FP32")
        tensor.set_data_from_numpy(rows.astype(np.float32))  # binary by default; no outputs named: binary answers
        result = server.infer("clf", [tensor], request_id="t-1")
        header = result.get_response()
        assert header["id"] == "t-1" and header["outputs"][0]["parameters"] == {"binary_data_size": 3 * 2 * 8}
        expected = model.predict_proba(rows.astype(np.float32).astype(np.float64))
        np.testing.assert_allclose(result.as_numpy("predict_proba"), expected, rtol=1e-9)

        as_json = triton.InferRequestedOutput("predict_proba", binary_data=False)
        result = server.infer("clf", [tensor], outputs=[as_json])
        assert "data" in result.get_response()["outputs"][0]
        np.testing.assert_allclose(result.as_numpy("predict_proba"), expected, rtol=1e-9)

        json_tensor = triton.InferInput("input-0", [3, 20], "FP64")
        json_tensor.set_data_from_numpy(rows, binary_data=False)
        result = server.infer("clf", [json_tensor])
        assert result.get_response()["outputs"][0]["parameters"]["binary_data_size"] == 48
        np.testing.assert_allclose(result.as_numpy("predict_proba"), model.predict_proba(rows), rtol=1e-9)

        for datatype in NUMERIC:
            values = (np.abs(rows) * 3).astype(triton_to_np_dtype(datatype))
            typed = triton.InferInput("input-0", [3, 20], datatype)
            typed.set_data_from_numpy(values)
            answer = server.infer("clf", [typed]).as_numpy("predict_proba")
            np.testing.assert_allclose(answer, model.predict_proba(values.astype(np.float64)), rtol=1e-9)

        regression = server.infer("reg", [tensor])
        assert regression.get_response()["outputs"][0]["shape"] == [3]
        expected = _model(sklearn_folders, "regression").predict(rows.astype(np.float32).astype(np.float64))
        np.testing.assert_allclose(regression.as_numpy("predict"), expected, rtol=1e-9)

        narrow = triton.InferInput("input-0", [2, 3], "FP32")
        narrow.set_data_from_numpy(np.zeros((2, 3), dtype=np.float32))
        with pytest.raises(InferenceServerException, match=r"input 'input-0'.*inputSize=20"):
            server.infer("clf", [narrow])
    finally:
        server.close()


def test_kserve_client_binary_and_json(estimator: str, sklearn_folders: dict[str, Path]) -> None:
    if not INTEROP_PYTHON.exists():
        message = f"no KServe client: {INTEROP_PYTHON} is missing (a venv of requirements-interop.txt)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    rows = np.random.default_rng(5).normal(size=(4, 20))
    cases = [
        {"name": "binary", "datatype": "FP32", "numpy": "float32", "binary_in": True, "binary_out": True},
        {"name": "binary-in", "datatype": "FP64", "numpy": "float64", "binary_in": True, "binary_out": False},
        {"name": "json", "datatype": "FP64", "numpy": "float64", "binary_in": False, "binary_out": False},
        {"name": "json-in", "datatype": "INT64", "numpy": "int64", "binary_in": False, "binary_out": True},
    ]
    spec = {"url": estimator, "model": "clf", "output": "predict_proba", "rows": rows.tolist(), "cases": cases}
    run = subprocess.run(
        [str(INTEROP_PYTHON), "-c", KSERVE_SCRIPT], input=json.dumps(spec), capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-3000:]
    answers = json.loads(run.stdout)
    model = _model(sklearn_folders)
    for case in cases:
        answer = answers[case["name"]]
        assert answer["id"] == case["name"] and answer["name"] == "predict_proba" and answer["shape"] == [4, 2]
        sent = rows.astype(case["numpy"]).astype(np.float64)
        np.testing.assert_allclose(answer["values"], model.predict_proba(sent), rtol=1e-9)
        if case["binary_out"]:
            assert answer["content_type"] == "application/octet-stream" and int(answer["header_length"]) > 0
        else:
            assert answer["content_type"] == "application/json" and answer["header_length"] is None


def test_malformed_binary_requests_are_one_line_400s(estimator: str) -> None:
    url = f"{estimator}/v2/models/clf/infer"
    row = np.linspace(-1, 1, 20, dtype=np.float32).reshape(1, 20)
    good, good_headers = _binary({"inputs": [_input([1, 20], "FP32", 80)]}, row.tobytes())
    claims_more = {"Inference-Header-Content-Length": str(len(good) + 1)}
    both = {**_input([1, 20], "FP32", 80), "data": [0] * 20}
    classify = [{"name": "predict_proba", "parameters": {"classification": 1}}]
    json_input = {"name": "input-0", "shape": [1, 20], "datatype": "FP32", "data": row.ravel().tolist()}
    refused_by_the_daemon = {
        "past the body": (good, claims_more, "is not a byte count within"),
        "not a number": (good, {"Inference-Header-Content-Length": "12a"}, "is not a byte count within"),
    }
    naming_the_input = {
        "size past the end": (*_binary({"inputs": [_input([1, 20], "FP32", 80)]}, row.tobytes()[:40]), "runs past"),
        "size against shape": (*_binary({"inputs": [_input([1, 20], "FP32", 40)]}, row.tobytes()[:40]), "needs 80"),
        "shape against size": (*_binary({"inputs": [_input([2, 20], "FP32", 80)]}, row.tobytes()), "needs 160"),
        "unknown datatype": (*_binary({"inputs": [_input([1, 20], "FP8", 20)]}, bytes(20)), "datatype 'FP8'"),
        "no datatype": (*_binary({"inputs": [{"name": "input-0", "shape": [1, 20]}]}), "datatype is missing"),
        "bytes tensor": (*_binary({"inputs": [_input([1], "BYTES", 7)]}, b"\x03\x00\x00\x00abc"), "BYTES is not"),
        "bad shape": (*_binary({"inputs": [_input([1, -20], "FP32", 80)]}, row.tobytes()), "non-negative integers"),
        "data and binary": (*_binary({"inputs": [both]}, row.tobytes()), "not both"),
        "json datatype": (json.dumps({"inputs": [{**json_input, "datatype": "STRING"}]}).encode(), {}, "'STRING'"),
        "json shape": (json.dumps({"inputs": [{**json_input, "shape": [2, 20]}]}).encode(), {}, "holds 40 values"),
    }
    other = {
        "trailing bytes": (*_binary({"inputs": [_input([1, 20], "FP32", 80)]}, row.tobytes(), b"xx"), "has 2 bytes"),
        "header not json": (b"{nope" + row.tobytes(), {"Inference-Header-Content-Length": "5"}, "not valid JSON"),
        "unknown output": (
            *_binary({"inputs": [_input([1, 20], "FP32", 80)], "outputs": [{"name": "predict"}]}, row.tobytes()),
            "output 'predict': unknown output",
        ),
        "unsupported parameter": (
            *_binary({"inputs": [_input([1, 20], "FP32", 80)], "parameters": {"priority": 1}}, row.tobytes()),
            "parameter 'priority' is not supported",
        ),
        "classification": (
            *_binary({"inputs": [_input([1, 20], "FP32", 80)], "outputs": classify}, row.tobytes()),
            "parameter 'classification' is not supported",
        ),
    }
    with httpx.Client(timeout=30) as http:
        for group, cases in (("daemon", refused_by_the_daemon), ("input", naming_the_input), ("other", other)):
            for label, (body, headers, expected) in cases.items():
                answer = http.post(url, content=body, headers=headers)
                assert answer.status_code == 400, (label, answer.text)
                message = answer.json()["error"]
                assert expected in message and "\n" not in message, (label, message)
                if group == "daemon":
                    assert message.startswith("Inference-Header-Content-Length: "), message
                if group == "input":
                    assert message.startswith("input 'input-0': "), message
        answer = http.post(url, content=good, headers=good_headers)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert "inference-header-content-length" not in answer.headers
    assert np.asarray(answer.json()["outputs"][0]["data"]).shape == (2,)


def test_binary_answer_on_the_wire(estimator: str, sklearn_folders: dict[str, Path]) -> None:
    rows = np.random.default_rng(7).normal(size=(2, 20))
    body, headers = _binary(
        {"id": "w-1", "inputs": [_input([2, 20], "FP64", 320)], "parameters": {"binary_data_output": True}},
        rows.astype("<f8").tobytes(),
    )
    answer = httpx.post(f"{estimator}/v2/models/clf/versions/1/infer", content=body, headers=headers)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/octet-stream"
    header_length = int(answer.headers["inference-header-content-length"])
    header = json.loads(answer.content[:header_length])
    assert header["id"] == "w-1" and header["model_name"]
    (output,) = header["outputs"]
    assert output == {
        "name": "predict_proba", "shape": [2, 2], "datatype": "FP64", "parameters": {"binary_data_size": 32}
    }
    values = np.frombuffer(answer.content[header_length:], dtype="<f8").reshape(2, 2)
    np.testing.assert_allclose(values, _model(sklearn_folders).predict_proba(rows), rtol=1e-9)
    per_output = json.loads(body[: int(headers["Inference-Header-Content-Length"])])
    per_output["outputs"] = [{"name": "predict_proba", "parameters": {"binary_data": False}}]
    body, headers = _binary(per_output, rows.astype("<f8").tobytes())
    answer = httpx.post(f"{estimator}/v2/models/clf/infer", content=body, headers=headers)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    np.testing.assert_allclose(np.reshape(answer.json()["outputs"][0]["data"], (2, 2)), values, rtol=1e-12)


def test_payload_log_keeps_the_header_and_the_tensors(estimator: str) -> None:
    rows = np.arange(40, dtype=np.float32).reshape(2, 20) / 8
    body, headers = _binary(
        {"inputs": [_input([2, 20], "FP32", 160)], "parameters": {"binary_data_output": True}}, rows.tobytes()
    )
    answer = httpx.post(f"{estimator}/v2/models/clf/infer", content=body, headers=headers)
    assert answer.status_code == 200
    split = int(answer.headers["inference-header-content-length"])
    probabilities = np.frombuffer(answer.content[split:], dtype="<f8").tolist()
    refused, refused_headers = _binary({"inputs": [_input([2, 20], "FP32", 160)]}, rows.tobytes()[:100])
    assert httpx.post(f"{estimator}/v2/models/clf/infer", content=refused, headers=refused_headers).status_code == 400
    client.stop("clf")
    stored_refusal, stored = payloadstore.payload_records("clf")
    (tensor,) = stored["request"]["inputs"]
    assert tensor["shape"] == [2, 20] and tensor["parameters"] == {"binary_data_size": 160}
    assert tensor["data"] == rows.ravel().tolist()
    (output,) = stored["response"]["outputs"]
    assert output["parameters"] == {"binary_data_size": 32} and output["data"] == probabilities
    assert stored_refusal["status"] == "400" and "runs past" in stored_refusal["response"]["error"]
    marker = stored_refusal["request"]["inputs"][0]["data"]
    assert marker["_truncated"] is True and marker["_bytes"] == 100 and "runs past" in marker["_reason"]


def test_payload_decoding_of_binary_bodies_in_process() -> None:
    def wrapped(header: dict, *tensors: bytes) -> bytes:
        text = json.dumps(header).encode()
        return oip.binary_prefix(len(text)) + text + b"".join(tensors)

    flags = np.array([True, False, True])
    stored = payload.decode_body(wrapped({"inputs": [_input([3], "BOOL", 3)]}, flags.tobytes()))
    assert stored["inputs"][0]["data"] == [True, False, True]
    words = b"\x03\x00\x00\x00abc\x01\x00\x00\x00z"
    stored = payload.decode_body(wrapped({"inputs": [_input([2], "BYTES", len(words))]}, words, b"left"))
    assert stored["inputs"][0]["data"]["_bytes"] == len(words) and "BYTES" in stored["inputs"][0]["data"]["_reason"]
    assert stored["unclaimed_binary"]["_bytes"] == 4
    big = np.zeros(payload.MAX_RECORD_BYTES // 4 + 1, dtype=np.float32)
    stored = payload.decode_body(wrapped({"inputs": [_input([big.size], "FP32", big.nbytes)]}, big.tobytes()))
    assert stored["inputs"][0]["shape"] == [big.size] and stored["inputs"][0]["data"]["_bytes"] == big.nbytes
    wide = np.zeros(3000, dtype=np.float32) + 0.1
    stored = payload.decode_body(wrapped({"inputs": [_input([3000], "FP32", wide.nbytes)]}, wide.tobytes()))
    assert "past the record cap" in stored["inputs"][0]["data"]["_reason"]
    nested = oip.binary_prefix(8) + oip.binary_prefix(0)
    assert payload.decode_body(oip.binary_prefix(len(nested)) + nested)["header"] == nested.decode("latin-1")
    payload.log_payloads([{"deployment": "dep-bin", "request": stored, "response": None}])
    assert payloadstore.payload_records("dep-bin")[0]["request"]["inputs"][0]["shape"] == [3000]
