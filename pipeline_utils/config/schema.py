"""The deployment-metadata schema (seed 001): one entry per model asset id.

Validation reports every problem at once, each with its YAML path, e.g.
``wmla_deployment.resource_configs.kernel_max: must be a positive integer (got 'eight')``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline_utils.config.names import DEPLOYMENT_NAME_RULE, is_deployment_name
from pipeline_utils.errors import BadInput

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


def _seconds(value: Any, positive: bool) -> int | float:
    """A finite duration in seconds (fractions allowed); integral values stay integers."""
    label = "a positive number of seconds" if positive else "a non-negative number of seconds"
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"must be {label}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"must be {label}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"must be {label}")
    return int(value) if float(value).is_integer() else float(value)


def _positive_seconds(value: Any) -> int | float:
    return _seconds(value, positive=True)


def _non_negative_seconds(value: Any) -> int | float:
    return _seconds(value, positive=False)


def _cpus(value: Any) -> int | float:
    """A positive, finite number of CPUs: fractions such as 0.5 are allowed (Ray, Kubernetes and EDI take them);
    numeric strings are read as numbers, like the schema's other numbers; integral values stay integers."""
    label = "a positive number of CPUs such as 2 or 0.5"
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"must be {label}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be {label}")
    if (isinstance(value, float) and not math.isfinite(value)) or value <= 0:
        raise ValueError(f"must be {label}")
    return int(value) if isinstance(value, float) and value.is_integer() else value


def whole_cpus(n_cpus: float) -> int:
    """``n_cpus`` as whole CPUs, for what only counts whole ones (CPU affinity, BLAS threads): rounded up."""
    return math.ceil(n_cpus)


def _boolean(value: Any) -> bool:
    """Accept YAML booleans and their spellings as strings (the seed's ``'True'``/``'False'``, yes/no, on/off)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false", "yes", "no", "on", "off"}:
        return value.strip().lower() in {"true", "yes", "on"}
    raise ValueError("must be true or false")


def flag(value: Any, field: str) -> bool:
    """``value`` as a boolean by the rule of :data:`Flag`; a BadInput naming ``field`` otherwise."""
    try:
        return _boolean(value)
    except ValueError as exc:
        raise BadInput(f"{exc}, not {value!r}", field=field) from None


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def _deployment_name(value: Any) -> str:
    if not is_deployment_name(value):
        raise ValueError(DEPLOYMENT_NAME_RULE)
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
CpuCount = Annotated[int | float, BeforeValidator(_cpus)]
NonNegativeInt = Annotated[int, BeforeValidator(_non_negative_int)]
PositiveSeconds = Annotated[int | float, BeforeValidator(_positive_seconds)]
NonNegativeSeconds = Annotated[int | float, BeforeValidator(_non_negative_seconds)]
Flag = Annotated[bool, BeforeValidator(_boolean)]
Text = Annotated[str, BeforeValidator(_text)]
DeploymentName = Annotated[str, BeforeValidator(_deployment_name)]
ThresholdPair = Annotated[list, BeforeValidator(_threshold)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Threshold(_Strict):
    """``{threshold: [value, direction]}``: 'lower' is violated below value, 'upper' above; equal is fine."""

    threshold: ThresholdPair

    @model_validator(mode="after")
    def _finite(self) -> Threshold:
        if not math.isfinite(self.value):
            raise ValueError(f"value must be a finite number (got {self.value!r})")
        return self

    @property
    def value(self) -> float:
        """The limit."""
        return self.threshold[0]

    @property
    def direction(self) -> str:
        """``lower`` or ``upper``."""
        return self.threshold[1]

    def violated(self, value: float) -> bool:
        """Whether ``value`` breaks this limit: below a lower one, above an upper one."""
        return value < self.value if self.direction == "lower" else value > self.value


class MonitorConfig(BaseModel):
    """One custom monitor: where its ground truth and predictions live, its window and its thresholds.

    The one definition of a monitor configuration and its defaults; the monitor code validates through it.
    Keys beyond these are kept for a user's own definition, which receives them; a built-in definition
    refuses them when the monitor is checked (the schema cannot tell which definition a monitor id uses).
    For the same reason ``dir_gt``, ``dir_pred`` and ``volume_display_name`` are optional here: a definition
    that reads folders (the image monitors) requires them when the monitor is checked, one that reads none
    (``drift_metrics``) does not (:mod:`pipeline_utils.monitor.checks`).
    """

    model_config = ConfigDict(extra="allow")

    dir_gt: Text | None = None
    dir_pred: Text | None = None
    most_recent: int | float = 1
    volume_display_name: Text | None = None
    thresholds: dict[str, Threshold] = Field(default_factory=dict)
    min_files: PositiveInt = 3
    definition: Text | None = None

    @field_validator("most_recent", mode="before")
    @classmethod
    def _days(cls, value: Any) -> int | float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
            raise ValueError("must be a number of days > 0")
        return value

    @property
    def extra_keys(self) -> list[str]:
        """The keys beyond the schema's, sorted (for a custom definition)."""
        return sorted(self.model_extra or {})

    @classmethod
    def parse(cls, raw: Any, prefix: tuple = ()) -> MonitorConfig:
        """The validated configuration; its first problem is a BadInput at its YAML path under ``prefix``."""
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            error = exc.errors()[0]
            raise BadInput(_message(error), field=format_location(prefix, tuple(error["loc"]))) from None


class ResourceConfigs(_Strict):
    """The kernel policy and resources of a deployment (seed 000): the one source of their defaults and checks.

    The runtime profile of a deploy target derives its policy and resource settings from this model.
    """

    CROSS_FIELD_KEY: ClassVar[str] = "kernel_min"

    enable_gpus: Flag = False
    n_cpus: CpuCount = 1
    memory_allocation: PositiveInt = 2048
    kernel_min: NonNegativeInt = 1
    kernel_max: PositiveInt = 1
    kernel_delay_release_time: NonNegativeSeconds = 60
    task_execution_timeout: PositiveSeconds = 120

    @model_validator(mode="after")
    def _min_not_above_max(self) -> ResourceConfigs:
        if self.kernel_min > self.kernel_max:
            raise ValueError(f"kernel_min ({self.kernel_min}) is above kernel_max ({self.kernel_max})")
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


def _message(error: dict) -> str:
    """The problem of one pydantic error, without its location."""
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required field is missing"
    message = error["msg"].removeprefix("Value error, ")
    if kind in ("model_type", "dict_type"):
        message = "must be a mapping"
    got = error.get("input")
    if kind == "value_error" and "(got " not in message and not isinstance(got, (dict, list)):
        message += f" (got {got!r})"
    return message


def _describe(error: dict, prefix: tuple) -> str:
    return f"{format_location(prefix, tuple(error['loc']))}: {_message(error)}"


def checked(model: type[BaseModel], values: Mapping[str, Any], locate: Callable[[str], str]) -> dict[str, Any]:
    """``values`` validated by ``model``, defaults filled in; the first problem is a BadInput at ``locate(key)``.

    A problem of the whole model (kernel_min above kernel_max) is located at its ``CROSS_FIELD_KEY``.
    """
    try:
        return model.model_validate(dict(values)).model_dump(mode="json")
    except ValidationError as exc:
        error = exc.errors()[0]
        whole = getattr(model, "CROSS_FIELD_KEY", next(iter(model.model_fields)))
        key = str(error["loc"][0]) if error["loc"] else whole
        raise BadInput(_message(error), field=locate(key)) from None


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
