"""From a deployment's metadata entry to the chart's values: resources, autoscaling, probes, secrets, settings.

The kernel policy becomes pods: each pod runs the project's runtime with one kernel (the in-pod profile has
kernel_min = kernel_max = 1), and the HorizontalPodAutoscaler scales pods between kernel_min and kernel_max, as
the local runtime scales kernels. Everything is checked here, before the first file of an export is written.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from pipeline_utils.config.schema import ResourceConfigs, checked
from pipeline_utils.deploy.base import ExportedDeployment
from pipeline_utils.deploy.image import CONTAINER_PORT
from pipeline_utils.deploy.routes import INFERENCE_PREFIX
from pipeline_utils.errors import BadInput

RUNTIME_MEMORY_MB = 256
"""Memory a pod needs beside its kernel's memory_allocation: the runtime's supervisor and daemon."""
MAX_STABILIZATION_SECONDS = 3600
"""The HPA's upper bound for a scale-down stabilisation window (autoscaling/v2 validation)."""
CPU_TARGET_PERCENT = 80
"""The HPA's average CPU utilisation target (the local runtime scales on queueing, which needs custom metrics)."""
GRACE_SECONDS = 10
"""Added to task_execution_timeout for the pod's termination grace: in-flight requests finish on SIGTERM."""
MILLICORES_PER_CPU = 1000
"""A Kubernetes CPU quantity is at most as fine as one millicore (``1m``); finer ones cannot be expressed."""
SERVICE_PORT = 80
"""The port of each deployment's Service (``service.port``) and of an endpoint's Service."""


def configs_of(deployment: ExportedDeployment) -> dict[str, Any]:
    """The deployment's resource_configs, checked by the metadata schema and by what a pod and an HPA can express."""
    given = (deployment.entry.get("wmla_deployment") or {}).get("resource_configs") or {}
    prefix = f"{deployment.name}: wmla_deployment.resource_configs"
    configs = checked(ResourceConfigs, {k: v for k, v in given.items() if v is not None}, lambda k: f"{prefix}.{k}")
    if configs["kernel_min"] < 1:
        raise BadInput(
            "0 (scale to zero) cannot be expressed by a HorizontalPodAutoscaler; set kernel_min to 1 or more",
            field=f"{prefix}.kernel_min",
        )
    if configs["kernel_delay_release_time"] > MAX_STABILIZATION_SECONDS:
        raise BadInput(
            f"{configs['kernel_delay_release_time']} s is above the {MAX_STABILIZATION_SECONDS} s an HPA's scale-down"
            " stabilisation window may be",
            field=f"{prefix}.kernel_delay_release_time",
        )
    cpu_quantity(configs["n_cpus"], f"{prefix}.n_cpus")
    if not deployment.name[0].isalpha():
        raise BadInput(f"{deployment.name!r}: a Kubernetes Service name must start with a letter", field="name")
    return configs


def pod_profile(configs: dict[str, Any]) -> dict[str, Any]:
    """The runtime profile inside one pod: one kernel with the deployment's resources and timeout."""
    return {**configs, "kernel_min": 1, "kernel_max": 1}


def cpu_quantity(n_cpus: float, field: str = "n_cpus") -> str:
    """``n_cpus`` as a Kubernetes CPU quantity: whole CPUs as ``"2"``, fractions in millicores (0.5 -> ``"500m"``,
    1.5 -> ``"1500m"``); a fraction finer than one millicore is a BadInput naming ``field``."""
    if float(n_cpus).is_integer():
        return str(int(n_cpus))
    millicores = round(n_cpus * MILLICORES_PER_CPU)
    if millicores < 1 or not math.isclose(n_cpus * MILLICORES_PER_CPU, millicores, rel_tol=0, abs_tol=1e-6):
        raise BadInput(
            f"{n_cpus} CPUs is finer than a Kubernetes CPU quantity can be: use whole millicores (multiples of 0.001)",
            field=field,
        )
    return f"{millicores}m"


def resources(configs: dict[str, Any]) -> dict[str, Any]:
    """Container requests and limits: n_cpus CPUs (see :func:`cpu_quantity`), memory_allocation MiB for the kernel
    plus the runtime's share."""
    cpu = cpu_quantity(configs["n_cpus"])
    requests = {"cpu": cpu, "memory": f"{configs['memory_allocation']}Mi"}
    limits = {"cpu": cpu, "memory": f"{configs['memory_allocation'] + RUNTIME_MEMORY_MB}Mi"}
    if configs["enable_gpus"]:
        limits["nvidia.com/gpu"] = 1
    return {"requests": requests, "limits": limits}


def autoscaling(configs: dict[str, Any]) -> dict[str, Any]:
    """The HPA's settings: replicas from the kernel policy, scale-down delayed by kernel_delay_release_time."""
    return {
        "enabled": configs["kernel_max"] > configs["kernel_min"],
        "minReplicas": configs["kernel_min"],
        "maxReplicas": configs["kernel_max"],
        "targetCPUUtilizationPercentage": CPU_TARGET_PERCENT,
        "scaleDownStabilizationSeconds": math.ceil(configs["kernel_delay_release_time"]),
    }


def chart_values(
    deployment: ExportedDeployment, configs: dict[str, Any], entry_file: str, estimator_config: dict[str, Any],
    image_tag: str,
) -> dict[str, Any]:
    """The chart's ``values.yaml``, in seed 002's shape (replicaCount, image, service, ingress, config) plus the
    runtime's own sections (deployment, profile, resources, autoscaling, customArgs, settings)."""
    name = deployment.name
    return {
        "replicaCount": configs["kernel_min"],
        "image": {"repository": name, "tag": image_tag, "pullPolicy": "IfNotPresent"},
        "imagePullSecrets": [],
        "service": {"type": "ClusterIP", "port": SERVICE_PORT, "targetPort": CONTAINER_PORT},
        "ingress": {
            "enabled": False,
            "className": "",
            "annotations": {},
            "hosts": [{"host": f"{name}.local", "paths": [{"path": inference_path(name), "pathType": "Prefix"}]}],
            "tls": [],
        },
        "config": estimator_config,
        "deployment": {"name": name, "kernelFilename": deployment.kernel_filename, "configFile": entry_file},
        "profile": pod_profile(configs),
        "resources": resources(configs),
        "autoscaling": autoscaling(configs),
        "terminationGracePeriodSeconds": math.ceil(configs["task_execution_timeout"]) + GRACE_SECONDS,
        "customArgs": {"secretName": f"{name}-custom-args", "names": sorted(deployment.custom_arg_names)},
        "settings": [{"name": key, "value": str(value)} for key, value in sorted(deployment.settings.items())],
    }


def inference_path(served_name: str) -> str:
    """The path the pods answer: the runtime in each serves the deployment under ``served_name``."""
    return f"{INFERENCE_PREFIX}{served_name}"


def served_as(values: dict[str, Any], served_name: str) -> dict[str, Any]:
    """The chart's values with the runtime in each pod serving the deployment under ``served_name`` (an endpoint's
    name, so that all of an endpoint's deployments answer one path: see :mod:`istio`); the Service, Secret and
    every other name stay the deployment's."""
    result = copy.deepcopy(values)
    result["deployment"]["name"] = served_name
    for host in result["ingress"]["hosts"]:
        for path in host["paths"]:
            path["path"] = inference_path(served_name)
    return result
