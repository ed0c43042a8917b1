"""The estimator flavour (seed 002): a scikit-learn style model saved with joblib or pickle.

``job: classification`` answers ``predict_proba``, ``job: regression`` answers ``predict``;
rows are checked against ``inputSize``. Requests queued to one kernel are predicted as one batch.
Open Inference Protocol requests come as JSON or with binary tensors (the binary tensor data extension, see
``oip.split_binary``); outputs are answered in binary when the request asks for it.
"""

from __future__ import annotations

import json
import math
import os
import pickle
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from pipeline_utils import oip
from pipeline_utils.jsondepth import MAX_DEPTH, too_deep
from pipeline_utils.kernels import handlers, ipc
from pipeline_utils.kernels.flavours import MODEL_FOLDER, MODEL_SUFFIXES

NUMERIC_DATATYPES = ", ".join(oip.TENSOR_DTYPES)
NO_TENSORS = memoryview(b"")


class BadInput(ValueError):
    """A request the model cannot answer; reported to the caller as a 400."""


def load_config(path: Path) -> dict[str, Any]:
    """Read the estimator config (YAML or JSON) and check its fields."""
    text = path.read_text()
    if path.suffix == ".json":
        config = json.loads(text)
    else:
        import yaml

        config = yaml.safe_load(text) or {}
    config = config.get("config", config)
    job = config.get("job")
    if job not in ("classification", "regression"):
        raise ValueError(f"{path.name}: job must be 'classification' or 'regression', not {job!r}")
    size = config.get("inputSize")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"{path.name}: inputSize must be a positive integer, not {size!r}")
    return config


def find_model(folder: Path, config: dict[str, Any]) -> Path:
    """The model file: ``modelPath`` (or seed 002's ``model``) from the config, relative to the folder or to its
    ``model/`` folder (where a staged model lands), else the only joblib/pickle file in one of them."""
    places = [folder, folder / MODEL_FOLDER]
    named = config.get("modelPath") or config.get("model_path") or config.get("model")
    if isinstance(named, str):
        found = next((place / named for place in places if (place / named).is_file()), None)
        if found is None:
            raise ValueError(f"{folder}: model file {named!r} not found (looked in the folder and {MODEL_FOLDER}/)")
        return found
    for place in places:
        candidates = sorted(p for p in place.glob("*") if p.suffix in MODEL_SUFFIXES and p.is_file())
        if len(candidates) > 1:
            raise ValueError(f"{place}: {len(candidates)} model files ({', '.join(p.name for p in candidates)}); "
                             "name one with modelPath in the config")
        if candidates:
            return candidates[0]
    raise ValueError(f"{folder}: no model file ({', '.join(MODEL_SUFFIXES)}) in the folder or {MODEL_FOLDER}/")


def load_model(path: Path, model_type: str | None = None) -> Any:
    """Load an estimator saved with joblib or pickle."""
    if (model_type or path.suffix.lstrip(".")) == "joblib":
        import joblib

        return joblib.load(path)
    with path.open("rb") as handle:
        return pickle.load(handle)


def rows_from(payload: Any, size: int) -> np.ndarray:
    """The feature rows of a request: ``{"data": rows}`` (also ``instances``/``inputs``) or bare rows."""
    if isinstance(payload, dict):
        key = next((k for k in ("data", "instances", "inputs") if k in payload), None)
        if key is None:
            raise BadInput('expected a JSON object with "data": [[feature, ...], ...]')
        payload = payload[key]
    try:
        rows = np.asarray(payload, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise BadInput(f"rows must be lists of {size} numbers ({exc})") from None
    if rows.ndim == 1:
        rows = rows.reshape(1, -1)
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise BadInput(f"expected a non-empty list of rows of {size} numbers")
    if rows.shape[1] != size:
        raise BadInput(f"each row must have inputSize={size} values, got {rows.shape[1]}")
    return rows


class OipReply(NamedTuple):
    """How an Open Inference Protocol request wants its answer: binary outputs or JSON, and the id to echo."""

    binary: bool
    echo: dict[str, Any]


def _flag(value: Any, what: str) -> bool:
    """A true/false parameter; anything else is refused rather than read as truthy."""
    if not isinstance(value, bool):
        raise BadInput(f"{what} must be true or false, not {value!r}")
    return value


def _parameters(holder: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    """The ``parameters`` object of a request, input or output; one this runtime cannot honour is refused."""
    parameters = holder.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise BadInput("parameters must be an object")
    for key in parameters:
        if key not in allowed:
            raise BadInput(f"parameter {key!r} is not supported (supported: {', '.join(allowed)})")
    return parameters


def _datatype(tensor: dict[str, Any], required: bool) -> str | None:
    """The input's datatype, one of the protocol's numeric ones (BYTES is refused: the model takes numbers)."""
    datatype = tensor.get("datatype")
    if datatype is None:
        if required:
            raise BadInput(f"datatype is missing (accepted: {NUMERIC_DATATYPES})")
        return None
    if datatype == oip.BYTES:
        raise BadInput(f"datatype BYTES is not accepted, an estimator takes numbers ({NUMERIC_DATATYPES})")
    if datatype not in oip.TENSOR_DTYPES:
        raise BadInput(f"unknown datatype {datatype!r} (accepted: {NUMERIC_DATATYPES})")
    return datatype


def _binary_values(shape: list[int], datatype: str, size: Any, tensors: memoryview) -> np.ndarray:
    """An input's values from its ``binary_data_size`` bytes at the start of ``tensors``, checked against its shape."""
    if type(size) is not int or size < 0:
        raise BadInput(f"binary_data_size must be a non-negative integer, not {size!r}")
    if size > len(tensors):
        raise BadInput(f"binary_data_size {size} runs past the end of the body ({len(tensors)} bytes left)")
    dtype = np.dtype(oip.TENSOR_DTYPES[datatype])
    expected = math.prod(shape) * dtype.itemsize
    if size != expected:
        raise BadInput(f"binary_data_size is {size} bytes but shape {shape} of {datatype} needs {expected}")
    return np.frombuffer(tensors[:size], dtype=dtype).reshape(shape)


def _json_values(tensor: dict[str, Any], shape: list[int]) -> np.ndarray:
    """An input's values from its JSON ``data`` (flat or nested, row-major), checked against its shape."""
    if "data" not in tensor:
        raise BadInput("no data (give data, or parameters.binary_data_size with binary tensors)")
    try:
        values = np.asarray(tensor["data"], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise BadInput(f"data must be numbers ({exc})") from None
    if values.size != math.prod(shape):
        raise BadInput(f"shape {shape} holds {math.prod(shape)} values but data has {values.size}")
    return values.reshape(shape)


def _input_rows(tensor: dict[str, Any], tensors: memoryview, binary_body: bool, size: int) -> tuple[np.ndarray, int]:
    """One input's feature rows and how many bytes of ``tensors`` it took (the caller names the input in errors)."""
    parameters = _parameters(tensor, ("binary_data_size",))
    shape = tensor.get("shape")
    if type(shape) is not list or not all(type(d) is int and d >= 0 for d in shape):
        raise BadInput(f"shape must be a list of non-negative integers, not {shape!r}")
    if "binary_data_size" in parameters:
        if "data" in tensor:
            raise BadInput("give either data or parameters.binary_data_size, not both")
        datatype = _datatype(tensor, required=True)
        values = _binary_values(shape, datatype, parameters["binary_data_size"], tensors)
        taken = parameters["binary_data_size"]
    else:
        _datatype(tensor, required=binary_body)
        values, taken = _json_values(tensor, shape), 0
    return rows_from(values, size), taken


def _wants_binary(payload: dict[str, Any], output_name: str, default: bool) -> bool:
    """Whether the one output goes back in binary: its ``binary_data``, else the request's ``binary_data_output``."""
    outputs = payload.get("outputs")
    if outputs is None:
        return default
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise BadInput('outputs must be a list of {"name", "parameters"} objects')
    binary = default
    for output in outputs:
        where = f"output {output.get('name')!r}"
        if output.get("name") != output_name:
            raise BadInput(f"{where}: unknown output; this model answers {output_name!r}")
        try:
            parameters = _parameters(output, ("binary_data",))
            if "binary_data" in parameters:
                binary = _flag(parameters["binary_data"], "binary_data")
        except BadInput as exc:
            raise BadInput(f"{where}: {exc}") from None
    return binary


def oip_request(body: bytes, size: int, output_name: str) -> tuple[np.ndarray, OipReply]:
    """The feature rows of an Open Inference Protocol request (JSON or binary body) and how to answer it."""
    split = oip.split_binary(body)
    if split is None:
        header, tensors = body, NO_TENSORS
    else:
        header_length, rest = split
        header, tensors = bytes(rest[:header_length]), rest[header_length:]
        if too_deep(header):
            raise BadInput(f"the request's JSON header is nested deeper than {MAX_DEPTH} levels")
    try:
        payload = json.loads(header)
    except ValueError as exc:
        raise BadInput(f"{'the JSON header' if split else 'the request body'} is not valid JSON: {exc}") from None
    inputs = payload.get("inputs") if isinstance(payload, dict) else None
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise BadInput('expected {"inputs": [{"name", "shape", "datatype", "data"}]} with one input')
    try:
        request_parameters = _parameters(payload, ("binary_data_output",))
        binary_output = _flag(request_parameters.get("binary_data_output", False), "binary_data_output")
    except BadInput as exc:
        raise BadInput(f"request: {exc}") from None
    try:
        rows, taken = _input_rows(inputs[0], tensors, split is not None, size)
    except BadInput as exc:
        raise BadInput(f"input {inputs[0].get('name', '#0')!r}: {exc}") from None
    if len(tensors) > taken:
        unclaimed = len(tensors) - taken
        raise BadInput(f"the body has {unclaimed} bytes of binary data that no input's binary_data_size claims")
    echo = {"id": payload["id"]} if "id" in payload else {}
    return rows, OipReply(_wants_binary(payload, output_name, binary_output), echo)


class EstimatorHandler:
    """Answers TASK frames (seed 002 JSON) and KSERVE frames (Open Inference Protocol v2)."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.batch_limit = int(os.environ.get("MLOPS_KERNEL_BATCH") or 64)
        self.name = os.environ.get("REDHARE_MODEL_NAME", "model")

    def start(self) -> None:
        self.config = load_config(self.config_path)
        self.size = int(self.config["inputSize"])
        self.model = load_model(find_model(self.config_path.parent, self.config), self.config.get("modelType"))
        method = "predict_proba" if self.config["job"] == "classification" else "predict"
        self.output_name = method
        self.predict = getattr(self.model, method)
        self.predict(np.zeros((1, self.size)))

    def handle(self, batch: list[tuple[int, int, bytes]]) -> list[bytes]:
        parsed: list[tuple[int, np.ndarray, OipReply | None]] = []
        replies: dict[int, bytes] = {}
        for rid, kind, body in batch:
            refusal = handlers.refuse_deep(rid, body)
            if refusal is not None:
                replies[rid] = refusal
                continue
            try:
                if kind == ipc.KSERVE:
                    rows, reply = oip_request(body, self.size, self.output_name)
                else:
                    rows, reply = rows_from(json.loads(body), self.size), None
                parsed.append((rid, rows, reply))
            except (BadInput, ValueError, RecursionError) as exc:
                replies[rid] = ipc.pack(rid, ipc.BAD_INPUT, handlers.error_body(handlers.one_line(exc)))
        if parsed:
            try:
                stacked = np.concatenate([p[1] for p in parsed]) if len(parsed) > 1 else parsed[0][1]
                outputs = np.asarray(self.predict(stacked))
            except Exception as exc:
                body = handlers.error_body(f"prediction failed: {type(exc).__name__}: {handlers.one_line(exc)}")
                for rid, _, _ in parsed:
                    replies[rid] = ipc.pack(rid, ipc.KERNEL_ERROR, body)
            else:
                start = 0
                for rid, rows, reply in parsed:
                    part = outputs[start : start + len(rows)]
                    start += len(rows)
                    replies[rid] = self._reply(rid, part, reply)
        return [replies[rid] for rid, _, _ in batch]

    def _reply(self, rid: int, part: np.ndarray, reply: OipReply | None) -> bytes:
        """One request's answer frame; a request whose answer cannot be encoded fails alone."""
        try:
            if reply is None:
                return ipc.pack(rid, ipc.RESULT, json.dumps({"predictions": part.tolist()}).encode())
            return ipc.pack(rid, ipc.RESULT, self._oip_answer(part, reply))
        except (ValueError, TypeError, RecursionError) as exc:
            body = handlers.error_body(f"answer not encodable: {type(exc).__name__}: {handlers.one_line(exc)}")
            return ipc.pack(rid, ipc.KERNEL_ERROR, body)

    def _oip_answer(self, part: np.ndarray, reply: OipReply) -> bytes:
        """The Open Inference Protocol answer: the output as JSON data, or as raw FP64 after a JSON header."""
        output: dict[str, Any] = {"name": self.output_name, "shape": list(part.shape), "datatype": "FP64"}
        answer = {"model_name": self.name, "outputs": [output], **reply.echo}
        if not reply.binary:
            output["data"] = part.ravel().tolist()
            return json.dumps(answer).encode()
        raw = np.ascontiguousarray(part, dtype="<f8").tobytes()
        output["parameters"] = {"binary_data_size": len(raw)}
        header = json.dumps(answer).encode()
        return b"".join((oip.binary_prefix(len(header)), header, raw))

    def shutdown(self) -> None:
        pass
