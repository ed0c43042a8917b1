"""One monitor's configuration from the metadata entry (``openscale_custom_metric_provider.<id>``), checked."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pipeline_utils.errors import PipelineError

DEFAULT_MIN_FILES = 3
DEFAULT_MOST_RECENT = 1
DIRECTIONS = ("lower", "upper")


@dataclass(frozen=True)
class Threshold:
    """A metric limit: ``lower`` is violated when the value is below it, ``upper`` when above."""

    value: float
    direction: str

    def violated(self, value: float) -> bool:
        """Whether ``value`` breaks this limit."""
        return value < self.value if self.direction == "lower" else value > self.value

    def as_list(self) -> list:
        """The metadata form ``[value, direction]``."""
        return [self.value, self.direction]


@dataclass(frozen=True)
class MonitorConfig:
    """A checked monitor configuration; ``raw`` keeps every key for custom definitions."""

    monitor_id: str
    dir_gt: str
    dir_pred: str
    most_recent: float
    volume_display_name: str
    thresholds: dict[str, Threshold]
    min_files: int = DEFAULT_MIN_FILES
    definition: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


def _fail(monitor_id: str, key: str, problem: str) -> PipelineError:
    return PipelineError(f"openscale_custom_metric_provider.{monitor_id}.{key}: {problem}")


def _text(monitor_id: str, raw: dict, key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _fail(monitor_id, key, f"must be a non-empty string, got {value!r}")
    return value.strip()


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def parse_threshold(monitor_id: str, metric: str, spec: Any) -> Threshold:
    """Read ``{'threshold': [value, 'lower'|'upper']}`` for ``metric``."""
    key = f"thresholds.{metric}"
    pair = spec.get("threshold") if isinstance(spec, dict) else None
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise _fail(monitor_id, key, f"must be {{'threshold': [value, 'lower'|'upper']}}, got {spec!r}")
    value = _number(pair[0])
    if value is None:
        raise _fail(monitor_id, key, f"threshold value must be a finite number, got {pair[0]!r}")
    if pair[1] not in DIRECTIONS:
        raise _fail(monitor_id, key, f"threshold direction must be 'lower' or 'upper', got {pair[1]!r}")
    return Threshold(value, pair[1])


def parse_monitor_config(monitor_id: str, raw: Any) -> MonitorConfig:
    """Check one monitor's configuration; a PipelineError names the first bad field."""
    if not isinstance(monitor_id, str) or not monitor_id.strip():
        raise PipelineError(
            f"openscale_custom_metric_provider: monitor id must be a non-empty string, got {monitor_id!r}"
        )
    if not isinstance(raw, dict):
        raise PipelineError(f"openscale_custom_metric_provider.{monitor_id}: must be a mapping, got {raw!r}")
    most_recent = _number(raw.get("most_recent", DEFAULT_MOST_RECENT))
    if most_recent is None or most_recent <= 0:
        raise _fail(monitor_id, "most_recent", f"must be a number of days > 0, got {raw.get('most_recent')!r}")
    min_files = raw.get("min_files", DEFAULT_MIN_FILES)
    if isinstance(min_files, bool) or not isinstance(min_files, int) or min_files < 1:
        raise _fail(monitor_id, "min_files", f"must be an integer >= 1, got {min_files!r}")
    thresholds = raw.get("thresholds") or {}
    if not isinstance(thresholds, dict):
        raise _fail(monitor_id, "thresholds", f"must be a mapping metric -> {{'threshold': [...]}}, got {thresholds!r}")
    definition = raw.get("definition")
    if definition is not None and (not isinstance(definition, str) or not definition.strip()):
        raise _fail(monitor_id, "definition", f"must be a string 'module:function', got {definition!r}")
    return MonitorConfig(
        monitor_id=monitor_id,
        dir_gt=_text(monitor_id, raw, "dir_gt"),
        dir_pred=_text(monitor_id, raw, "dir_pred"),
        most_recent=most_recent,
        volume_display_name=_text(monitor_id, raw, "volume_display_name"),
        thresholds={str(m): parse_threshold(monitor_id, str(m), s) for m, s in thresholds.items()},
        min_files=min_files,
        definition=definition.strip() if definition else None,
        raw=dict(raw),
    )
