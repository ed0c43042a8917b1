"""The deployment-metadata schema (seed 001): one entry per model asset id.

Validation reports every problem at once, each with its YAML path, e.g.
``wmla_deployment.resource_configs.n_cpus: must be a positive integer (got 'eight')``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

DEPLOYMENT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
ENTRY_FIELDS = (
    "deployment_id",
    "deployment_space_id",
    "model_asset",
    "model_name",
    "openscale_subscription_id",
    "openscale_custom_metric_provider",
    "wmla_deployment",
    "model_asset_version",
    "target_settings",
)


def _integer(value: Any, minimum: int, label: str) -> int:
    """Accept ints (and integral strings/floats YAML may give); refuse bools and fractions."""
    if isinstance(value, bool):
        raise ValueError(f"must be {label}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        value = int(value)
    if not isinstance(value, int) or value < minimum:
        raise ValueError(f"must be {label}")
    return value


def _positive_int(value: Any) -> int:
    return _integer(value, 1, "a positive integer")


def _non_negative_int(value: Any) -> int:
    return _integer(value, 0, "a non-negative integer")


def _boolean(value: Any) -> bool:
    """Accept YAML booleans and the seed's ``'True'``/``'False'`` strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false", "yes", "no"}:
        return value.strip().lower() in {"true", "yes"}
    raise ValueError("must be true or false")


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def _deployment_name(value: Any) -> str:
    if not isinstance(value, str) or not DEPLOYMENT_NAME.match(value):
        raise ValueError(
            "must be 1-63 lowercase letters, digits and hyphens, starting and ending with a letter or digit"
        )
    return value


def _threshold(value: Any) -> list:
    """A ``[value, 'lower'|'upper']`` pair."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError("must be a pair [value, 'lower' or 'upper']")
    number, direction = value
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        try:
            number = float(str(number))
        except ValueError:
            raise ValueError(f"value must be a number (got {number!r})") from None
    if direction not in ("lower", "upper"):
        raise ValueError(f"direction must be 'lower' or 'upper' (got {direction!r})")
    return [float(number), direction]


PositiveInt = Annotated[int, BeforeValidator(_positive_int)]
NonNegativeInt = Annotated[int, BeforeValidator(_non_negative_int)]
Flag = Annotated[bool, BeforeValidator(_boolean)]
Text = Annotated[str, BeforeValidator(_text)]
DeploymentName = Annotated[str, BeforeValidator(_deployment_name)]
ThresholdPair = Annotated[list, BeforeValidator(_threshold)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Threshold(_Strict):
    """``{threshold: [value, direction]}``: 'lower' is violated below value, 'upper' above."""

    threshold: ThresholdPair


class MonitorConfig(BaseModel):
    """One custom monitor: where its ground truth and predictions live, and its thresholds.

    Keys beyond these are allowed only for a user's own ``definition``, which may read them.
    """

    model_config = ConfigDict(extra="allow")

    dir_gt: Text
    dir_pred: Text
    most_recent: PositiveInt = 1
    volume_display_name: Text
    thresholds: dict[str, Threshold] = Field(default_factory=dict)
    min_files: PositiveInt = 3
    definition: Text | None = None

    @model_validator(mode="after")
    def _extra_keys_need_a_definition(self) -> MonitorConfig:
        extra = sorted(self.model_extra or {})
        if extra and self.definition is None:
            raise ValueError(f"unknown key {extra[0]!r} (extra keys are for a custom 'definition' only)")
        return self


class ResourceConfigs(_Strict):
    """The kernel policy and resources of a deployment (seed 000)."""

    enable_gpus: Flag = False
    n_cpus: PositiveInt = 1
    memory_allocation: PositiveInt = 2048
    kernel_min: NonNegativeInt = 1
    kernel_max: PositiveInt = 1
    kernel_delay_release_time: NonNegativeInt = 60
    task_execution_timeout: PositiveInt = 120

    @model_validator(mode="after")
    def _min_not_above_max(self) -> ResourceConfigs:
        if self.kernel_min > self.kernel_max:
            raise ValueError(f"kernel_min ({self.kernel_min}) must not exceed kernel_max ({self.kernel_max})")
        return self


class DeployedAssets(_Strict):
    """What a running deployment was built from: asset ids and versions, pinned when it was deployed."""

    model_asset_id: Text
    model_asset_version: PositiveInt
    dependency_asset_id: Text
    dependency_asset_version: PositiveInt
    deployed_at: Text


class WmlaDeployment(_Strict):
    """Where and how the model is served; the dependency asset is pinned by id and version once staged."""

    deployment_name: DeploymentName | None = None
    deployment_url: str | None = None
    dependency_filename: str | None = None
    dependency_asset_id: str | None = None
    dependency_asset_version: PositiveInt | None = None
    resource_configs: ResourceConfigs = Field(default_factory=ResourceConfigs)
    deployed: DeployedAssets | None = None


class MetadataEntry(_Strict):
    """One deployment-metadata entry; null fields are filled in by the pipeline.

    The model asset is the entry's key (its id) and ``model_asset_version``; ``model_asset`` and
    ``dependency_filename`` keep the names, for display and for entries the original CLI wrote.
    ``target_settings`` holds settings of one deploy target each, keyed by the target's name.
    """

    deployment_id: str | None = None
    deployment_space_id: str | None = None
    model_asset: str | None = None
    model_asset_version: PositiveInt | None = None
    model_name: Text | None = None
    openscale_subscription_id: str | None = None
    openscale_custom_metric_provider: dict[str, MonitorConfig] | None = None
    wmla_deployment: WmlaDeployment
    target_settings: dict[str, dict[str, Any]] | None = None


def format_location(prefix: tuple, loc: tuple) -> str:
    """Render a pydantic location as a YAML path: ``a.b[0].c``."""
    text = ""
    for part in (*prefix, *loc):
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(document)"


def _describe(error: dict, prefix: tuple) -> str:
    location = format_location(prefix, tuple(error["loc"]))
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{location}: unknown key"
    if kind == "missing":
        return f"{location}: required field is missing"
    message = error["msg"].removeprefix("Value error, ")
    if kind in ("model_type", "dict_type"):
        message = "must be a mapping"
    got = error.get("input")
    if kind == "value_error" and "(got " not in message and not isinstance(got, (dict, list)):
        message += f" (got {got!r})"
    return f"{location}: {message}"


def entry_problems(entry: Any, prefix: tuple = ()) -> list[str]:
    """Every problem of one entry, each on one line with its YAML path (empty when valid)."""
    if not isinstance(entry, dict):
        return [f"{format_location(prefix, ()) }: must be a mapping (got {type(entry).__name__})"]
    try:
        MetadataEntry.model_validate(entry)
    except ValidationError as exc:
        return [_describe(error, prefix) for error in exc.errors()]
    return []


def normalize_entry(entry: dict) -> dict:
    """The entry with defaults filled in and values coerced (e.g. ``'True'`` -> ``true``)."""
    return MetadataEntry.model_validate(entry).model_dump(mode="json")


def looks_like_entry(document: dict) -> bool:
    """True when a mapping is itself an entry (a draft) rather than entries keyed by asset id."""
    return any(key in ENTRY_FIELDS for key in document)
