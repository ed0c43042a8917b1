"""KServe ``InferenceService`` (v1beta1) resources: one per deployment, and an endpoint's split as a canary.

Each deployment's predictor is a custom container from the deployment's own image (the same runtime and flavour
code as the chart and the local runtime). A traffic split maps onto KServe's canary rollout of ONE service: the
endpoint becomes an InferenceService named after it, applied first with the predictor of the deployment that takes
the larger share (``1-stable.yaml``, 100 % once ready) and then with the other's predictor and
``canaryTrafficPercent`` set to its share (``2-canary.yaml``). KServe keeps the previous revision for the rest.
That expresses at most two deployments with traffic and no mirror: :func:`canary_refusal` says why another map is
not (the export then writes Istio's form only, see :mod:`istio`).
"""

from __future__ import annotations

import copy
import math
from typing import Any

from pipeline_utils.deploy.image import APP_FOLDER, CONTAINER_PORT, PROFILE_ENV

API_VERSION = "serving.kserve.io/v1beta1"
SERVERLESS = {"serving.kserve.io/deploymentMode": "Serverless", "serving.kserve.io/enable-tag-routing": "true"}
"""Knative mode (canaryTrafficPercent works there only) with ``latest-``/``prev-`` URLs to reach each revision."""
STABLE_FILE = "1-stable.yaml"
CANARY_FILE = "2-canary.yaml"


def container_args(name: str, values: dict[str, Any]) -> list[str]:
    """The entrypoint's arguments: the folder, the deployment name it serves, and the names it reads (no values)."""
    args = ["--folder", APP_FOLDER, "--name", name, "--kernel-filename", values["deployment"]["kernelFilename"]]
    for arg in values["customArgs"]["names"]:
        args += ["--custom-arg", arg]
    for setting in values["settings"]:
        args += ["--setting", setting["name"]]
    return args


def container_env(values: dict[str, Any], profile_json: str) -> list[dict[str, Any]]:
    """The profile and settings as plain variables, the custom args as references to the deployment's Secret."""
    secret = values["customArgs"]["secretName"]
    env: list[dict[str, Any]] = [{"name": PROFILE_ENV, "value": profile_json}]
    env += [{"name": arg, "valueFrom": {"secretKeyRef": {"name": secret, "key": arg}}}
            for arg in values["customArgs"]["names"]]
    return env + [dict(setting) for setting in values["settings"]]


def inference_service(name: str, values: dict[str, Any], profile_json: str) -> dict[str, Any]:
    """The InferenceService of one deployment, from its chart values: replicas, concurrency 1, timeout, resources."""
    probe = {"httpGet": {"path": "/v2/health/ready", "port": CONTAINER_PORT}, "periodSeconds": 5}
    container = {
        "name": "kserve-container",
        "image": f"{values['image']['repository']}:{values['image']['tag']}",
        "args": container_args(name, values),
        "env": container_env(values, profile_json),
        "ports": [{"containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "readinessProbe": probe,
        "livenessProbe": {**probe, "httpGet": {**probe["httpGet"], "path": "/v2/health/live"}, "periodSeconds": 10},
        "resources": copy.deepcopy(values["resources"]),
    }
    predictor = {
        "minReplicas": values["autoscaling"]["minReplicas"],
        "maxReplicas": values["autoscaling"]["maxReplicas"],
        "scaleMetric": "concurrency",
        "scaleTarget": 1,
        "timeout": math.ceil(values["profile"]["task_execution_timeout"]),
        "containers": [container],
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "annotations": dict(SERVERLESS),
            "labels": {"app.kubernetes.io/managed-by": "mlops", "mlops/deployment": values["deployment"]["name"]},
        },
        "spec": {"predictor": predictor},
    }


def live_pair(traffic: dict[str, int]) -> list[tuple[str, int]]:
    """The deployments taking traffic in a checked map, larger share first (ties by name)."""
    return sorted(((name, weight) for name, weight in traffic.items() if weight), key=lambda item: (-item[1], item[0]))


def canary_refusal(traffic: dict[str, int], mirror: dict[str, int]) -> str | None:
    """Why KServe's canary rollout cannot express a checked split (a mirror, more than two deployments with
    traffic), in one line; None when it can."""
    if mirror:
        shown = ", ".join(f"{name}={percent}" for name, percent in mirror.items())
        return f"KServe's canary rollout cannot mirror requests (mirror {shown})"
    live = live_pair(traffic)
    if len(live) > 2:
        shown = ", ".join(f"{name}={weight}" for name, weight in live)
        return f"KServe's canaryTrafficPercent splits one service between two revisions, not {len(live)} ({shown})"
    return None


def endpoint_services(
    endpoint: str, traffic: dict[str, int], values: dict[str, dict[str, Any]], profiles: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """The endpoint's InferenceService files for a split :func:`canary_refusal` accepts: stable (and canary with its
    percent), each serving under the endpoint's name so both revisions answer the same paths."""
    files = {}
    for position, (name, weight) in enumerate(live_pair(traffic)):
        service = inference_service(endpoint, values[name], profiles[name])
        if position:
            service["spec"]["predictor"]["canaryTrafficPercent"] = weight
        files[CANARY_FILE if position else STABLE_FILE] = service
    return files
