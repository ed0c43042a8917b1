"""One monitor's configuration (``openscale_custom_metric_provider.<id>``), validated by the metadata schema.

The schema's :class:`~pipeline_utils.config.schema.MonitorConfig` and
:class:`~pipeline_utils.config.schema.Threshold` own the fields, their defaults and the violation rule;
this module only locates their problems under the monitor's id.
"""

from __future__ import annotations

from typing import Any

from pipeline_utils.config.schema import MonitorConfig, Threshold
from pipeline_utils.errors import BadInput

PROVIDER = "openscale_custom_metric_provider"

__all__ = ["PROVIDER", "MonitorConfig", "Threshold", "monitor_field", "parse_monitor_config"]


def monitor_field(monitor_id: str, *keys: str) -> str:
    """The YAML path of a monitor's key, e.g. ``openscale_custom_metric_provider.seg.dir_gt``."""
    return ".".join((PROVIDER, str(monitor_id), *keys))


def parse_monitor_config(monitor_id: Any, raw: Any) -> MonitorConfig:
    """The validated configuration of one monitor; a BadInput names the first bad field."""
    if not isinstance(monitor_id, str) or not monitor_id.strip():
        raise BadInput(f"monitor id must be a non-empty string, got {monitor_id!r}", field=PROVIDER)
    return MonitorConfig.parse(raw, (PROVIDER, monitor_id))
