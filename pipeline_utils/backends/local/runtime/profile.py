"""Deployment profiles: the kernel policy and resources of a deployment (seed 000's resource_configs)."""

from __future__ import annotations

import copy
from typing import Any

from pipeline_utils.errors import PipelineError

DEFAULTS: dict[str, dict[str, Any]] = {
    "policy": {
        "kernel_min": 1,
        "kernel_max": 1,
        "kernel_delay_release_time": 60,
        "task_execution_timeout": 120,
        "task_batch_size": 0,
    },
    "resource": {
        "n_cpus": 1,
        "memory_allocation": 2048,
        "enable_gpus": False,
    },
    "limits": {
        "max_request_bytes": 64 * 1024 * 1024,
    },
    # Off by default: logging costs the daemon CPU per request (queueing here, JSON parsing, masking
    # and SQLite writes in its writer thread, which shares the GIL with the event loop), and request
    # bodies may hold personal data; users switch it on per deployment (see README).
    "logging": {
        "payload": False,
    },
}
SECONDS = ("kernel_delay_release_time", "task_execution_timeout")
SECTION_OF = {key: section for section, keys in DEFAULTS.items() for key in keys}


def default_profile() -> dict[str, dict[str, Any]]:
    """A fresh copy of the default profile."""
    return copy.deepcopy(DEFAULTS)


def with_defaults(profile: dict[str, Any]) -> dict[str, Any]:
    """``profile`` with settings added since it was stored filled in from the defaults."""
    merged = copy.deepcopy(profile)
    for section, keys in DEFAULTS.items():
        for key, value in keys.items():
            merged.setdefault(section, {}).setdefault(key, copy.deepcopy(value))
    return merged


def apply_changes(profile: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Apply ``changes`` (``section.key``, bare keys like resource_configs, or nested sections) and validate."""
    updated = copy.deepcopy(profile)
    for key, value in _flatten(changes):
        section, _, field = key.rpartition(".")
        section = section or SECTION_OF.get(field, "")
        if field not in DEFAULTS.get(section, {}):
            raise PipelineError(f"unknown profile setting {key!r}; known: {', '.join(sorted(SECTION_OF))}")
        updated.setdefault(section, {})[field] = _coerce(field, value, DEFAULTS[section][field])
    validate(updated)
    return updated


def validate(profile: dict[str, Any]) -> None:
    """Reject inconsistent settings with a one-line message."""
    policy, resource = profile["policy"], profile["resource"]
    if policy["kernel_max"] < 1:
        raise PipelineError("kernel_max must be at least 1")
    if policy["kernel_min"] > policy["kernel_max"]:
        raise PipelineError(f"kernel_min ({policy['kernel_min']}) is above kernel_max ({policy['kernel_max']})")
    if resource["n_cpus"] < 1:
        raise PipelineError("n_cpus must be at least 1")


def _flatten(changes: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in changes.items():
        if isinstance(value, dict) and key in DEFAULTS and not prefix:
            items.extend(_flatten(value, f"{key}."))
        else:
            items.append((f"{prefix}{key}", value))
    return items


def _coerce(field: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if isinstance(value, str):
            value = value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PipelineError(f"{field} must be a number, not {value!r}") from None
    if number < 0:
        raise PipelineError(f"{field} must not be negative")
    if number == int(number):
        return int(number)
    if field not in SECONDS:
        raise PipelineError(f"{field} must be an integer, not {value!r}")
    return number
