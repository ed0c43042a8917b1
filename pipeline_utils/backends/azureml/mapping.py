"""How a deployment's resource configs and ``target_settings.azureml`` become Azure ML managed online settings.

- ``n_cpus``, ``memory_allocation`` (MB), ``enable_gpus`` -> ``instance_type``: the first VM size of :data:`SKUS`
  (ordered by vCPUs, then memory) with at least that many vCPUs and that much memory, with a GPU when asked (a
  fractional ``n_cpus`` rounds up: 0.5 and 1 pick alike, 2.5 needs 3 vCPUs, so 4);
  ``target_settings.azureml.instance_type`` overrides the choice. One instance serves as one kernel.
- ``n_cpus`` -> the BLAS thread caps, in whole CPUs rounded up as the local runtime sets them.
- ``kernel_min`` -> ``instance_count`` (at least 1: managed online deployments do not scale to zero).
- ``kernel_max`` above that, ``kernel_delay_release_time`` -> an Azure Monitor autoscale setting (out of the YAML:
  Azure's managed deployments have only the ``default`` scale type), written as commands in ``deploy.sh``.
- ``task_execution_timeout`` (s) -> ``request_settings.request_timeout_ms`` (Azure allows at most 180000 ms).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from pipeline_utils.config.schema import ResourceConfigs, checked, whole_cpus
from pipeline_utils.errors import BadInput

CONFIGS_FIELD = "wmla_deployment.resource_configs"
SETTINGS_FIELD = "target_settings.azureml"
MAX_REQUEST_TIMEOUT_MS = 180_000
CPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"
GPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.8-cudnn8-ubuntu22.04:latest"
TARGET_SETTINGS = ("image", "instance_type")


class Sku(NamedTuple):
    """One VM size of Azure ML's managed online endpoints SKU list."""

    name: str
    vcpus: int
    memory_gb: float
    gpus: int = 0


SKUS: tuple[Sku, ...] = (
    Sku("Standard_F2s_v2", 2, 4),
    Sku("Standard_DS2_v2", 2, 7),
    Sku("Standard_E2s_v3", 2, 16),
    Sku("Standard_F4s_v2", 4, 8),
    Sku("Standard_DS3_v2", 4, 14),
    Sku("Standard_E4s_v3", 4, 32),
    Sku("Standard_NC4as_T4_v3", 4, 28, 1),
    Sku("Standard_F8s_v2", 8, 16),
    Sku("Standard_DS4_v2", 8, 28),
    Sku("Standard_E8s_v3", 8, 64),
    Sku("Standard_NC8as_T4_v3", 8, 56, 1),
    Sku("Standard_F16s_v2", 16, 32),
    Sku("Standard_DS5_v2", 16, 56),
    Sku("Standard_E16s_v3", 16, 128),
    Sku("Standard_NC16as_T4_v3", 16, 110, 1),
    Sku("Standard_NC24ads_A100_v4", 24, 220, 1),
    Sku("Standard_F32s_v2", 32, 64),
    Sku("Standard_E32s_v3", 32, 256),
    Sku("Standard_F48s_v2", 48, 96),
    Sku("Standard_NC48ads_A100_v4", 48, 440, 2),
    Sku("Standard_F64s_v2", 64, 128),
    Sku("Standard_E64s_v3", 64, 432),
    Sku("Standard_NC64as_T4_v3", 64, 440, 4),
    Sku("Standard_F72s_v2", 72, 144),
    Sku("Standard_NC96ads_A100_v4", 96, 880, 4),
)


@dataclass(frozen=True)
class Autoscale:
    """An Azure Monitor autoscale setting for a deployment: instance bounds and the scale-in averaging window."""

    min_count: int
    max_count: int
    scale_in_minutes: int


@dataclass(frozen=True)
class Sizing:
    """What a deployment's resource configs become on Azure ML."""

    instance_type: str
    instance_count: int
    request_timeout_ms: int
    threads: int
    image: str
    autoscale: Autoscale | None


def resource_configs(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry's resource configs, checked by the metadata schema with its defaults filled in."""
    raw = entry.get("wmla_deployment", {}).get("resource_configs") or {}
    return checked(ResourceConfigs, raw, lambda key: f"{CONFIGS_FIELD}.{key}")


def target_settings(entry: dict[str, Any]) -> dict[str, str]:
    """``target_settings.azureml`` of the entry: only the keys this target reads, each a non-empty string."""
    settings = (entry.get("target_settings") or {}).get("azureml") or {}
    if not isinstance(settings, dict):
        raise BadInput("must be a mapping", field=SETTINGS_FIELD)
    for key, value in settings.items():
        if key not in TARGET_SETTINGS:
            raise BadInput(f"unknown setting (known: {', '.join(TARGET_SETTINGS)})", field=f"{SETTINGS_FIELD}.{key}")
        if not isinstance(value, str) or not value.strip():
            raise BadInput(f"must be a non-empty string, not {value!r}", field=f"{SETTINGS_FIELD}.{key}")
    return dict(settings)


def pick_sku(n_cpus: float, memory_mb: int, gpus: bool) -> str:
    """The smallest VM size with ``n_cpus`` vCPUs (a fraction rounds up to whole ones), ``memory_mb`` MB and a GPU
    when ``gpus``; BadInput if none."""
    for sku in SKUS:
        if sku.vcpus >= whole_cpus(n_cpus) and sku.memory_gb * 1024 >= memory_mb and bool(sku.gpus) == gpus:
            return sku.name
    kind = "GPU " if gpus else ""
    raise BadInput(
        f"no Azure ML managed online {kind}VM size has {n_cpus} vCPUs and {memory_mb} MB; lower it or name one in"
        f" {SETTINGS_FIELD}.instance_type",
        field=f"{CONFIGS_FIELD}.n_cpus",
    )


def request_timeout_ms(seconds: float) -> int:
    """``task_execution_timeout`` in milliseconds, refused above Azure's 180 s."""
    milliseconds = round(seconds * 1000)
    if not 1 <= milliseconds <= MAX_REQUEST_TIMEOUT_MS:
        raise BadInput(
            f"{seconds} s is outside the 0.001-{MAX_REQUEST_TIMEOUT_MS // 1000} s Azure ML allows a request",
            field=f"{CONFIGS_FIELD}.task_execution_timeout",
        )
    return milliseconds


def sizing(entry: dict[str, Any]) -> Sizing:
    """Every Azure setting mapped from the entry (see the module docstring); BadInput naming a field Azure lacks."""
    configs, settings = resource_configs(entry), target_settings(entry)
    gpus = bool(configs["enable_gpus"])
    count = max(1, int(configs["kernel_min"]))
    autoscale = None
    if configs["kernel_max"] > count:
        window = max(1, math.ceil(float(configs["kernel_delay_release_time"]) / 60))
        autoscale = Autoscale(count, int(configs["kernel_max"]), window)
    return Sizing(
        instance_type=settings.get("instance_type")
        or pick_sku(configs["n_cpus"], int(configs["memory_allocation"]), gpus),
        instance_count=count,
        request_timeout_ms=request_timeout_ms(float(configs["task_execution_timeout"])),
        threads=whole_cpus(configs["n_cpus"]),
        image=settings.get("image") or (GPU_IMAGE if gpus else CPU_IMAGE),
        autoscale=autoscale,
    )
