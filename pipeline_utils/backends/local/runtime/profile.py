"""Deployment profiles: the kernel policy and resources of a deployment, laid out in sections for the runtime.

The policy and resource settings, their defaults and their checks come from the metadata schema's
``ResourceConfigs`` (seed 000's resource_configs); only the runtime's own settings are declared here.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, ConfigDict

from pipeline_utils.config.schema import Flag, NonNegativeInt, PositiveInt, ResourceConfigs, checked
from pipeline_utils.deploy.profiles import flat_changes

POLICY_KEYS = frozenset({"kernel_min", "kernel_max", "kernel_delay_release_time", "task_execution_timeout"})


class RuntimeSettings(BaseModel):
    """The local runtime's settings beyond resource_configs."""

    model_config = ConfigDict(extra="forbid")

    task_batch_size: NonNegativeInt = 0
    max_request_bytes: PositiveInt = 64 * 1024 * 1024
    # Off by default: logging costs CPU per request (buffering on the daemon's event loop; checks, masking
    # and SQLite writes in its writer process), and request bodies may hold personal data; users switch it
    # on per deployment (see README).
    payload: Flag = False


SECTION_OF: dict[str, str] = {
    **{key: "policy" if key in POLICY_KEYS else "resource" for key in ResourceConfigs.model_fields},
    "task_batch_size": "policy",
    "max_request_bytes": "limits",
    "payload": "logging",
}


def _layout(settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    sections: dict[str, dict[str, Any]] = {section: {} for section in ("policy", "resource", "limits", "logging")}
    for key, value in settings.items():
        sections[SECTION_OF[key]][key] = value
    return sections


DEFAULTS: dict[str, dict[str, Any]] = _layout(
    {**ResourceConfigs().model_dump(mode="json"), **RuntimeSettings().model_dump(mode="json")}
)


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
    settings = {key: profile.get(section, {}).get(key, DEFAULTS[section][key]) for key, section in SECTION_OF.items()}
    settings.update(flat_changes(changes, SECTION_OF, name_field=False))
    return validate(_layout(settings))


def validate(profile: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The profile checked and normalised by the schema; the first bad setting is a one-line BadInput naming it."""
    flat = {key: section_values[key] for section_values in profile.values() for key in section_values}

    def locate(key: str) -> str:
        return f"{SECTION_OF[key]}.{key}"

    configs = checked(ResourceConfigs, {key: flat[key] for key in ResourceConfigs.model_fields}, locate)
    own = checked(RuntimeSettings, {key: flat[key] for key in RuntimeSettings.model_fields}, locate)
    return _layout({**configs, **own})
