"""Serve's declarative config for a deployment: the kernel policy mapped to autoscaling and actor options, the
application entry, and the merge with the cluster's other applications (a PUT replaces all of them).

Custom-arg values never appear here: the config (``runtime_env`` included) is echoed back by GET.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Sequence
from typing import Any

from pipeline_utils.config.schema import ResourceConfigs, checked, flag
from pipeline_utils.deploy import profiles
from pipeline_utils.deploy.routes import ENDPOINT_PREFIX, INFERENCE_PREFIX
from pipeline_utils.errors import BadInput, Conflict

APP_IMPORT_PATH = "pipeline_utils.backends.ray.app:build"
INGRESS = "Kernel"
ROUTER_IMPORT_PATH = "pipeline_utils.backends.ray.router:build"
ROUTER = "Router"
ENDPOINT_APP_PREFIX = "endpoint."
ROUTER_MAX_ONGOING_REQUESTS = 256
KERNEL_MAX_ONGOING_REQUESTS = 16
MB = 1024 * 1024
UPSCALE_DELAY_S = 2.0
HEALTH_CHECK_PERIOD_S = 2.0
POLICY_KEYS = ("kernel_min", "kernel_max", "kernel_delay_release_time", "task_execution_timeout")
RESOURCE_KEYS = ("n_cpus", "memory_allocation", "enable_gpus")
SECTION_OF = {**{key: "policy" for key in POLICY_KEYS}, **{key: "resource" for key in RESOURCE_KEYS},
              "payload": "logging"}
KEPT_INSTANCE_OPTIONS = ("proxy_location", "http_options", "grpc_options", "target_capacity")


def checked_profile(resource_configs: dict[str, Any] | None) -> dict[str, Any]:
    """Seed 000's resource configs checked by the metadata schema (a fractional ``n_cpus`` is kept as is: two
    replicas of 0.5 share one CPU); None values take the defaults. A setting this target cannot express is a
    BadInput naming it."""
    configs = {key: value for key, value in (resource_configs or {}).items() if value is not None}
    unknown = sorted(set(configs) - set(ResourceConfigs.model_fields))
    if unknown:
        known = ", ".join(ResourceConfigs.model_fields)
        raise BadInput(f"is not a setting the ray target can express (it maps: {known})", field=unknown[0])
    return checked(ResourceConfigs, configs, lambda key: key)


def sections(profile: dict[str, Any], payload_log: bool = False) -> dict[str, dict[str, Any]]:
    """The profile laid out as the local runtime shows it: ``policy``, ``resource`` and ``logging``."""
    return {
        "policy": {key: profile[key] for key in POLICY_KEYS},
        "resource": {key: profile[key] for key in RESOURCE_KEYS},
        "logging": {"payload": payload_log},
    }


def flat_changes(changes: dict[str, Any]) -> tuple[dict[str, Any], bool | None]:
    """Profile changes as flat resource-config keys, by the rule every target shares
    (:func:`pipeline_utils.deploy.profiles.flat_changes`), and ``logging.payload`` (None when not changed) apart."""
    flat = profiles.flat_changes(changes, SECTION_OF)
    if "payload" not in flat:
        return flat, None
    return flat, flag(flat.pop("payload"), "logging.payload")


def deployment_options(profile: dict[str, Any]) -> dict[str, Any]:
    """The kernel policy and resources as Serve deployment options (one replica = one kernel).

    kernel_min/kernel_max bound the replicas (0 scales to zero), kernel_delay_release_time is the downscale delay,
    queueing drives upscaling (a target of one ongoing request per replica, a short upscale delay), n_cpus (as
    given, fractions included), memory_allocation (MB, as bytes) and enable_gpus are reserved per replica. A
    replica takes up to KERNEL_MAX_ONGOING_REQUESTS requests and queues them itself in front of its kernel, which
    runs one task at a time: Serve's proxy then hands requests over at once instead of retrying full replicas with
    backoff. Health is checked every HEALTH_CHECK_PERIOD_S, so a replica stuck in a timed-out task is replaced
    within seconds (Serve acts after 3 failed checks). The graceful shutdown waits out a task in flight.
    """
    return {
        "name": INGRESS,
        "max_ongoing_requests": KERNEL_MAX_ONGOING_REQUESTS,
        "autoscaling_config": {
            "min_replicas": profile["kernel_min"],
            "max_replicas": profile["kernel_max"],
            "target_ongoing_requests": 1,
            "upscale_delay_s": UPSCALE_DELAY_S,
            "downscale_delay_s": float(profile["kernel_delay_release_time"]),
        },
        "ray_actor_options": {
            "num_cpus": profile["n_cpus"],
            "memory": profile["memory_allocation"] * MB,
            "num_gpus": 1 if profile["enable_gpus"] else 0,
        },
        "health_check_period_s": HEALTH_CHECK_PERIOD_S,
        "graceful_shutdown_timeout_s": float(profile["task_execution_timeout"]) + 5.0,
    }


def application(
    name: str,
    *,
    working_dir: str,
    py_modules: list[str],
    flavour: str,
    entry: str,
    profile: dict[str, Any],
    settings: dict[str, str],
    custom_arg_names: list[str],
    holder: str,
    payload_buffer: str,
    payload_token_sha256: str,
    payload_log: bool = False,
) -> dict[str, Any]:
    """The Serve application of deployment ``name``: its package as ``working_dir``, the project's code as
    ``py_modules``, the flavour and kernel settings as builder args; custom args by name only; the payload buffer's
    name and the SHA-256 of its token (never the token)."""
    return {
        "name": name,
        "route_prefix": f"{INFERENCE_PREFIX}{name}",
        "import_path": APP_IMPORT_PATH,
        "runtime_env": {"working_dir": working_dir, "py_modules": list(py_modules)},
        "args": {
            "name": name,
            "flavour": flavour,
            "entry": entry,
            "settings": dict(sorted(settings.items())),
            "custom_arg_names": sorted(custom_arg_names),
            "custom_args_holder": holder,
            "task_execution_timeout": float(profile["task_execution_timeout"]),
            "payload_log": payload_log,
            "payload_buffer": payload_buffer,
            "payload_token_sha256": payload_token_sha256,
        },
        "deployments": [deployment_options(profile)],
    }


def endpoint_app_name(endpoint: str) -> str:
    """The Serve application of an endpoint's router: a dot no deployment name has, so the two never collide."""
    return f"{ENDPOINT_APP_PREFIX}{endpoint}"


def router_application(endpoint: dict[str, Any], py_modules: list[str]) -> dict[str, Any]:
    """The Serve application of an endpoint (``endpoint`` as :meth:`Endpoint.record` gives it): one router
    replica on ``/endpoints/<name>``, its split as ``user_config`` (a new split reconfigures it in place)."""
    return {
        "name": endpoint_app_name(endpoint["name"]),
        "route_prefix": f"{ENDPOINT_PREFIX}{endpoint['name']}",
        "import_path": ROUTER_IMPORT_PATH,
        "runtime_env": {"py_modules": list(py_modules)},
        "deployments": [{
            "name": ROUTER,
            "num_replicas": 1,
            "max_ongoing_requests": ROUTER_MAX_ONGOING_REQUESTS,
            "ray_actor_options": {"num_cpus": 0},
            "user_config": {
                "name": endpoint["name"],
                "deployments": list(endpoint["deployments"]),
                "traffic": dict(sorted(endpoint["traffic"].items())),
                "mirror": dict(sorted(endpoint["mirror"].items())),
            },
        }],
    }


def with_policy(app: dict[str, Any], profile: dict[str, Any]) -> dict[str, Any]:
    """``app`` with its deployment options and timeout set from ``profile``."""
    updated = copy.deepcopy(app)
    updated["deployments"] = [deployment_options(profile)]
    updated["args"]["task_execution_timeout"] = float(profile["task_execution_timeout"])
    return updated


def _submitted(details: dict[str, Any]) -> list[dict[str, Any]]:
    """The config each application of the cluster was submitted with; one deployed from code cannot be kept, one
    being deleted (it shows no config any more) is left out."""
    apps = []
    for app_name, app in sorted(details.get("applications", {}).items()):
        if app.get("status") == "DELETING":
            continue
        config = app.get("deployed_app_config")
        if not config:
            raise Conflict(
                f"Ray Serve application {app_name!r} was deployed from code (serve.run), not from a config; a PUT of "
                "the config would replace it: deploy it from a config first, or delete it"
            )
        apps.append(config)
    return apps


def merged(
    details: dict[str, Any],
    apps: Sequence[dict[str, Any]],
    *,
    drop: Collection[str] = (),
    http_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The PUT body for the cluster of ``details`` (a GET) with ``apps`` added or replaced and ``drop`` removed.

    Every other application is kept as it was submitted, and so are the instance's proxy, HTTP and gRPC options;
    ``http_options`` (where the proxy listens) apply only when Serve is not running yet.
    """
    replaced = set(drop) | {app["name"] for app in apps}
    kept = [config for config in _submitted(details) if config.get("name") not in replaced]
    body: dict[str, Any] = {
        key: details[key] for key in KEPT_INSTANCE_OPTIONS if details.get(key) is not None
    }
    if "http_options" not in body and http_options:
        body["http_options"] = dict(http_options)
    body["applications"] = sorted([*kept, *apps], key=lambda config: str(config.get("name")))
    return body
