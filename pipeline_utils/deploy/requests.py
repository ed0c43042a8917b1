"""Sending inference requests in seed 003's shape: serialized images, and images on a storage volume."""

from __future__ import annotations

import base64
import posixpath
import time
import uuid
from pathlib import Path
from typing import Any

from pipeline_utils.backends import get_deploy_target
from pipeline_utils.errors import NotFound, PipelineError
from pipeline_utils.volumes import clean_path, volume


def send_image(deployment_name: str, image: str | Path | bytes, **fields: Any) -> dict[str, Any]:
    """Send one image (a file, or its content) as ``local_input_image`` (base64); returns HTTP status, seconds
    and the answer."""
    content = image if isinstance(image, bytes) else Path(image).read_bytes()
    payload = {"local_input_image": base64.b64encode(content).decode("ascii"), **fields}
    started = time.perf_counter()
    status, answer = get_deploy_target().predict(deployment_name, payload)
    return {"status": status, "seconds": round(time.perf_counter() - started, 3), "answer": answer}


def predict_volume_folder(
    deployment_name: str,
    volume_name: str,
    input_dir: str,
    *,
    dir_pred: str,
    output_suffix: str = "_Seg.png",
    **fields: Any,
) -> list[dict[str, Any]]:
    """Send each PNG of ``input_dir`` as ``img_path_on_pvc``; copy each ``*<output_suffix>`` output to ``dir_pred``.

    Predictions get the input's file name, so monitors pair them with ground truth by name. The volume is
    read and written through the storage-volumes interface, so this works wherever the volume lives.
    """
    store = volume(volume_name)
    if not store.exists():
        raise NotFound(f"unknown volume {volume_name!r}", field="volume_display_name")
    input_dir, dir_pred = clean_path(input_dir, "input_dir"), clean_path(dir_pred, "dir_pred")
    inputs = [
        f for f in store.list(input_dir) if not f.is_dir and not f.name.startswith(".") and f.name.endswith(".png")
    ]
    if not inputs:
        raise NotFound(f"no PNG images on volume {volume_name!r}", field=input_dir or "input_dir")
    store.mkdir(dir_pred)
    target = get_deploy_target()
    rows = []
    for image in inputs:
        request_id = f"{posixpath.splitext(image.name)[0]}-{uuid.uuid4().hex[:8]}"
        payload = {"img_path_on_pvc": image.path, "request_id": request_id, **fields}
        started = time.perf_counter()
        status, answer = target.predict(deployment_name, payload)
        seconds = time.perf_counter() - started
        answer = answer if isinstance(answer, dict) else {"msg": str(answer)[:200]}
        produced = [f for f in answer.get("output_files", []) if f.endswith(output_suffix)]
        if status == 200 and answer.get("status") == "finished" and produced:
            store.write_bytes(f"{dir_pred}/{image.name}", store.read_bytes(produced[0]))
        rows.append(
            {
                "image": image.name,
                "request_id": request_id,
                "http": status,
                "status": answer.get("status"),
                "seconds": round(seconds, 3),
                "msg": answer.get("msg"),
            }
        )
    failed = [row for row in rows if row["http"] != 200 or row["status"] != "finished"]
    if failed:
        raise PipelineError(
            f"{len(failed)} of {len(rows)} volume requests to {deployment_name} failed; "
            f"first: {failed[0]['image']}: HTTP {failed[0]['http']} {failed[0]['msg']}"
        )
    return rows
