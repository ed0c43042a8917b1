"""What the monitor service returns: measurements of evaluation runs, monitor instances and their status."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

FINISHED = "finished"
FAILED = "failed"


@dataclass(frozen=True)
class Measurement:
    """One metric of a run: its value, its limit (if any) and whether the value breaks it."""

    metric: str
    value: float
    threshold: float | None = None
    direction: str | None = None
    violated: bool = False


@dataclass(frozen=True)
class Run:
    """One evaluation run of a monitor: state, reason when failed, measurements and problems noted."""

    run_id: str
    deployment: str
    subscription_id: str
    monitor_id: str
    definition: str
    started_at: str
    finished_at: str
    state: str
    reason: str | None = None
    measurements: list[Measurement] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def issues(self) -> int:
        """How many metrics violate their threshold."""
        return sum(m.violated for m in self.measurements)

    @property
    def violations(self) -> list[Measurement]:
        """The measurements that violate their threshold."""
        return [m for m in self.measurements if m.violated]

    @property
    def values(self) -> dict[str, float]:
        """Metric name -> value."""
        return {m.metric: m.value for m in self.measurements}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for ``--json``)."""
        return asdict(self) | {"issues": self.issues}


@dataclass(frozen=True)
class MonitorInstance:
    """A monitor configured on a deployment's subscription."""

    deployment: str
    subscription_id: str
    monitor_id: str
    definition: str
    created_at: str
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class MonitorStatus:
    """A monitor and its latest run (None before the first run)."""

    monitor: MonitorInstance
    latest: Run | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for ``--json``)."""
        return {
            "monitor_id": self.monitor.monitor_id,
            "definition": self.monitor.definition,
            "subscription_id": self.monitor.subscription_id,
            "latest_run": self.latest.to_dict() if self.latest else None,
        }
