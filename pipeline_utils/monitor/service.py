"""The monitor-service interface: what the pipeline needs from a monitoring backend (local or OpenScale)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from pipeline_utils.backends import Configurable
from pipeline_utils.monitor.model import MonitorInstance, MonitorStatus, Run


class MonitorService(Configurable, ABC):
    """Subscriptions per deployment, monitor instances with thresholds, evaluation runs and their history."""

    @abstractmethod
    def create_subscription(self, deployment: str, model_asset_id: str | None = None) -> str:
        """Subscribe ``deployment`` to monitoring and return the subscription id (the existing one if any)."""

    @abstractmethod
    def subscription_id(self, deployment: str) -> str | None:
        """The subscription id of ``deployment``, or None when it has none."""

    @abstractmethod
    def create_monitors(self, deployment: str, provider: dict) -> list[MonitorInstance]:
        """Create one monitor per entry of ``openscale_custom_metric_provider``; all or nothing."""

    @abstractmethod
    def run(self, deployment: str, monitor_id: str | None = None) -> list[Run]:
        """Evaluate the deployment's monitors (or one) now and store each run."""

    @abstractmethod
    def status(self, deployment: str) -> list[MonitorStatus]:
        """Each monitor of ``deployment`` with its latest run."""

    @abstractmethod
    def list_monitors(self, deployment: str | None = None) -> list[MonitorInstance]:
        """The configured monitors, of one deployment or of all."""

    @abstractmethod
    def history(self, deployment: str, monitor_id: str | None = None, limit: int | None = None) -> list[Run]:
        """Stored runs, oldest first (the last ``limit`` per monitor when given)."""

    @abstractmethod
    def delete(self, deployment: str, monitor_id: str | None = None) -> list[str]:
        """Delete the deployment's monitors (or one) with their runs; without ``monitor_id`` also the subscription."""
