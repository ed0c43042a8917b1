"""The estimator flavour (seed 002): a scikit-learn style model saved with joblib or pickle.

``job: classification`` answers ``predict_proba``, ``job: regression`` answers ``predict``;
rows are checked against ``inputSize``. Requests queued to one kernel are predicted as one batch.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from pipeline_utils.backends.local.runtime import ipc, worker
from pipeline_utils.backends.local.runtime.flavours import MODEL_FOLDER, MODEL_SUFFIXES


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
        parsed: list[tuple[int, int, Any]] = []
        replies: dict[int, bytes] = {}
        for rid, kind, body in batch:
            refusal = worker.refuse_deep(rid, body)
            if refusal is not None:
                replies[rid] = refusal
                continue
            try:
                payload = json.loads(body)
                rows = self._kserve_rows(payload) if kind == ipc.KSERVE else rows_from(payload, self.size)
                parsed.append((rid, kind, (rows, payload)))
            except (BadInput, ValueError, RecursionError) as exc:
                replies[rid] = ipc.pack(rid, ipc.BAD_INPUT, worker.error_body(worker.one_line(exc)))
        if parsed:
            try:
                stacked = np.concatenate([p[2][0] for p in parsed]) if len(parsed) > 1 else parsed[0][2][0]
                outputs = np.asarray(self.predict(stacked))
            except Exception as exc:
                body = worker.error_body(f"prediction failed: {type(exc).__name__}: {worker.one_line(exc)}")
                for rid, _, _ in parsed:
                    replies[rid] = ipc.pack(rid, ipc.KERNEL_ERROR, body)
            else:
                start = 0
                for rid, kind, (rows, payload) in parsed:
                    part = outputs[start : start + len(rows)]
                    start += len(rows)
                    replies[rid] = self._reply(rid, kind, part, payload)
        return [replies[rid] for rid, _, _ in batch]

    def _reply(self, rid: int, kind: int, part: np.ndarray, payload: Any) -> bytes:
        """One request's answer frame; a request whose answer cannot be encoded fails alone."""
        try:
            return ipc.pack(rid, ipc.RESULT, self._answer(kind, part, payload))
        except (ValueError, TypeError, RecursionError) as exc:
            body = worker.error_body(f"answer not encodable: {type(exc).__name__}: {worker.one_line(exc)}")
            return ipc.pack(rid, ipc.KERNEL_ERROR, body)

    def _kserve_rows(self, payload: Any) -> np.ndarray:
        inputs = payload.get("inputs") if isinstance(payload, dict) else None
        if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
            raise BadInput('expected {"inputs": [{"name", "shape", "datatype", "data"}]} with one input')
        tensor = inputs[0]
        try:
            data = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput(f"input tensor: {exc}") from None
        return rows_from(data, self.size)

    def _answer(self, kind: int, part: np.ndarray, payload: Any) -> bytes:
        if kind != ipc.KSERVE:
            return json.dumps({"predictions": part.tolist()}).encode()
        answer: dict[str, Any] = {
            "model_name": self.name,
            "outputs": [
                {"name": self.output_name, "shape": list(part.shape), "datatype": "FP64", "data": part.ravel().tolist()}
            ],
        }
        if isinstance(payload, dict) and "id" in payload:
            answer["id"] = payload["id"]
        return json.dumps(answer).encode()

    def shutdown(self) -> None:
        pass
