"""One monitor's configuration (``openscale_custom_metric_provider.<id>``), validated by the metadata schema.

The schema's :class:`~pipeline_utils.config.schema.MonitorConfig` and
:class:`~pipeline_utils.config.schema.Threshold` own the fields, their defaults and the violation rule;
this module only locates their problems under the monitor's id. A definition that reads keys of its own
declares them as a subclass of ``MonitorConfig`` (its attribute ``config_model``): :class:`DriftConfig` for
``drift_metrics``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationInfo, field_validator

from pipeline_utils.config.schema import MonitorConfig, PositiveInt, Text, Threshold
from pipeline_utils.errors import BadInput
from pipeline_utils.monitor.drift import DRIFT_PSI

PROVIDER = "openscale_custom_metric_provider"
DRIFT_KINDS = ("auto", "tabular", "image")

__all__ = ["DRIFT_KINDS", "PROVIDER", "DriftConfig", "MonitorConfig", "Threshold", "monitor_field",
           "parse_monitor_config"]


def _bins(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= 100:
        raise ValueError("must be an integer from 2 to 100")
    return value


def _kind(value: Any) -> str:
    if value not in DRIFT_KINDS:
        raise ValueError(f"must be one of {', '.join(DRIFT_KINDS)}")
    return value


def _psi_limit(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ValueError("must be a number > 0")
    return float(value)


class DriftConfig(MonitorConfig):
    """A ``drift_metrics`` monitor: the schema's keys, plus its reference data set and how much log to compare.

    ``reference_asset`` (id, or unique name, of a staged asset) at ``reference_version`` (default: latest);
    the latest ``max_records`` payload records of the past ``most_recent`` days, at least ``min_records`` of
    them usable; ``bins`` PSI bins; a feature whose PSI is above ``psi_threshold`` counts as drifted; ``kind``
    of inputs (``auto``: from the reference's file type).
    """

    reference_asset: Text
    reference_version: PositiveInt | None = None
    min_records: PositiveInt = 100
    max_records: PositiveInt = 1000
    bins: Annotated[int, BeforeValidator(_bins)] = 10
    kind: Annotated[str, BeforeValidator(_kind)] = "auto"
    psi_threshold: Annotated[float, BeforeValidator(_psi_limit)] = DRIFT_PSI

    @field_validator("max_records")
    @classmethod
    def _room_for_min(cls, value: int, info: ValidationInfo) -> int:
        least = info.data.get("min_records")
        if least is not None and value < least:
            raise ValueError(f"must be at least min_records ({least})")
        return value


def monitor_field(monitor_id: str, *keys: str) -> str:
    """The YAML path of a monitor's key, e.g. ``openscale_custom_metric_provider.seg.dir_gt``."""
    return ".".join((PROVIDER, str(monitor_id), *keys))


def parse_monitor_config(monitor_id: Any, raw: Any, model: type[MonitorConfig] = MonitorConfig) -> MonitorConfig:
    """The validated configuration of one monitor (as ``model``, a definition's own); a BadInput names the first
    bad field."""
    if not isinstance(monitor_id, str) or not monitor_id.strip():
        raise BadInput(f"monitor id must be a non-empty string, got {monitor_id!r}", field=PROVIDER)
    return model.parse(raw, (PROVIDER, monitor_id))
