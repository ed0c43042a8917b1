"""Sending inference requests in seed 003's shape: serialized images, and images on a storage volume."""

from __future__ import annotations

import base64
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from pipeline_utils.backends import get_deploy_target
from pipeline_utils.backends.local.volumes import resolve_on_volume, volume_path
from pipeline_utils.errors import PipelineError


def send_image(deployment_name: str, image: str | Path, **fields: Any) -> dict[str, Any]:
    """Send one image as ``local_input_image`` (base64 PNG); returns HTTP status, seconds and the answer."""
    payload = {"local_input_image": base64.b64encode(Path(image).read_bytes()).decode("ascii"), **fields}
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

    Predictions get the input's file name, so monitors pair them with ground truth by name.
    """
    volume = volume_path(volume_name)
    inputs = sorted(resolve_on_volume(volume, input_dir).glob("*.png"))
    if not inputs:
        raise PipelineError(f"{input_dir}: no PNG images on volume {volume_name!r}")
    predictions = resolve_on_volume(volume, dir_pred)
    predictions.mkdir(parents=True, exist_ok=True)
    target = get_deploy_target()
    rows = []
    for image in inputs:
        request_id = f"{image.stem}-{uuid.uuid4().hex[:8]}"
        payload = {"img_path_on_pvc": f"{input_dir.rstrip('/')}/{image.name}", "request_id": request_id, **fields}
        started = time.perf_counter()
        status, answer = target.predict(deployment_name, payload)
        seconds = time.perf_counter() - started
        answer = answer if isinstance(answer, dict) else {"msg": str(answer)[:200]}
        produced = [f for f in answer.get("output_files", []) if f.endswith(output_suffix)]
        if status == 200 and answer.get("status") == "finished" and produced:
            shutil.copyfile(resolve_on_volume(volume, produced[0]), predictions / image.name)
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
