"""What a drift monitor reads in request and answer bodies: feature rows, predicted labels, images and their masks.

Tabular requests carry rows under ``instances``, ``inputs`` or ``data`` (or are a bare list of rows): rows of
numbers (by position), records ``{feature: value}`` (by name), columns ``{feature: [values]}``, or Open Inference
Protocol tensors (one ``[rows, features]`` tensor, or one ``[rows]`` tensor per feature, named). Answers carry
``predictions`` (labels, ``{"label"|"prediction"|"class": ...}`` objects, or per-class scores whose largest wins)
or OIP ``outputs``. Image requests are the image kernel's: ``img_path_on_pvc`` (a file on the monitor's volume) or
``local_input_image`` (base64; the payload log keeps it only when short); its answers list the masks it wrote
(``output_files`` ending ``_Seg.png``) and log the class shares of the pixels (``positive 12.5%, negative 3.0%``).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

INPUT_KEYS = ("instances", "inputs", "data")
LABEL_KEYS = ("label", "prediction", "class")
MASK_SUFFIX = "_Seg.png"
_SHARES = re.compile(r"positive (\d+(?:\.\d+)?)%, negative (\d+(?:\.\d+)?)% of pixels")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_tensor(value: Any) -> bool:
    return isinstance(value, dict) and "data" in value and ("shape" in value or "datatype" in value)


def _tensor_rows(tensors: list[dict]) -> list | None:
    """Rows of OIP input tensors: one 2-D tensor, or one 1-D tensor per named feature."""
    if len(tensors) == 1:
        data = np.asarray(tensors[0]["data"], dtype=np.float64)
        shape = tensors[0].get("shape") or [data.size]
        return data.reshape(shape if len(shape) == 2 else (1, -1)).tolist()
    return _column_rows({str(t.get("name")): t["data"] for t in tensors})


def _column_rows(columns: dict[str, Any]) -> list[dict]:
    """Records from columns ``{feature: [values]}`` (a scalar is one row's value)."""
    lists = {k: v if isinstance(v, list) else [v] for k, v in columns.items()}
    length = min((len(v) for v in lists.values()), default=0)
    return [{k: v[i] for k, v in lists.items()} for i in range(length)]


def request_rows(body: Any) -> list | None:
    """The rows a request (or a JSON reference) carries: lists of values or records; None when it carries none."""
    if isinstance(body, dict):
        body = next((body[key] for key in INPUT_KEYS if key in body), None)
    if isinstance(body, dict):
        return _column_rows(body) or None
    if not isinstance(body, list) or not body:
        return None
    try:
        if all(_is_tensor(t) for t in body):
            return _tensor_rows(body)
    except (ValueError, TypeError):
        return None
    if all(_is_number(v) for v in body):
        return [body]
    return body


def feature_matrix(rows: list, names: list[str]) -> np.ndarray | None:
    """Rows as a float matrix with one column per reference feature; None when they do not fit the reference.

    Lists are taken by position and must be as wide as ``names``; records by name. Missing values become NaN.
    """
    try:
        if all(isinstance(row, dict) for row in rows):
            rows = [[row[name] for name in names] for row in rows]
        matrix = np.asarray(rows, dtype=np.float64)
    except (KeyError, ValueError, TypeError):
        return None
    if matrix.ndim != 2 or matrix.shape[1] != len(names):
        return None
    return matrix


def label_text(value: Any) -> str:
    """A class label as text, so that 1, 1.0 and "1" are one class."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value.strip()
        value = number
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


def _label(item: Any) -> str | None:
    if isinstance(item, dict):
        key = next((k for k in LABEL_KEYS if k in item), None)
        return None if key is None else label_text(item[key])
    if isinstance(item, list):
        return str(int(np.argmax(item))) if item and all(_is_number(v) for v in item) else None
    return None if item is None else label_text(item)


def _output_labels(outputs: Any) -> list[str] | None:
    if not isinstance(outputs, list) or not outputs or not _is_tensor(outputs[0]):
        return None
    data, shape = outputs[0]["data"], outputs[0].get("shape") or []
    if len(shape) == 2 and shape[1] > 1:
        scores = np.asarray(data, dtype=np.float64).reshape(shape)
        return [str(int(i)) for i in np.argmax(scores, axis=1)]
    return [label_text(v) for v in data] if isinstance(data, list) else None


def response_labels(body: Any) -> list[str] | None:
    """The predicted class of each row an answer carries; None when it carries none."""
    if not isinstance(body, dict):
        return None
    try:
        if "predictions" in body and isinstance(body["predictions"], list):
            labels = [_label(item) for item in body["predictions"]]
            return None if not labels or None in labels else labels
        return _output_labels(body.get("outputs"))
    except (ValueError, TypeError):
        return None


def image_source(body: Any) -> tuple[str, str] | None:
    """Where an image request's image is: ``("volume", path)`` or ``("inline", base64)``; None for neither."""
    if not isinstance(body, dict):
        return None
    path, inline = body.get("img_path_on_pvc"), body.get("local_input_image")
    if isinstance(path, str) and path:
        return "volume", path
    if isinstance(inline, str) and inline:
        return "inline", inline
    return None


def mask_path(body: Any) -> str | None:
    """The segmentation mask an image answer says it wrote on the volume, if any."""
    files = body.get("output_files") if isinstance(body, dict) else None
    if not isinstance(files, list):
        return None
    return next((f for f in files if isinstance(f, str) and f.endswith(MASK_SUFFIX)), None)


def logged_shares(body: Any) -> tuple[float, float] | None:
    """The (positive, negative) pixel shares an image answer's log states, as fractions; None when it states none."""
    lines = body.get("log") if isinstance(body, dict) else None
    for line in lines if isinstance(lines, list) else ():
        found = _SHARES.search(line) if isinstance(line, str) else None
        if found:
            return float(found[1]) / 100, float(found[2]) / 100
    return None
