"""The monitor-service interface: what the pipeline needs from a monitoring backend (local or OpenScale)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from pipeline_utils.backends import Configurable
from pipeline_utils.monitor.model import MonitorInstance, MonitorStatus, Run


class MonitorService(Configurable, ABC):
    """Subscriptions per deployment, monitor instances with thresholds, evaluation runs and their history.

    Every method blocks until the service has answered (an evaluation until its runs are stored). Errors are
    typed (:mod:`pipeline_utils.errors`): BadInput for a bad configuration (naming its field), NotFound for
    a deployment without a subscription or an unknown monitor, Conflict for a monitor configured already,
    Unavailable when a remote service cannot be reached. A method that raises has changed nothing.
    """

    @abstractmethod
    def create_subscription(self, deployment: str, model_asset_id: str | None = None) -> str:
        """Subscribe ``deployment`` to monitoring and return the subscription id.

        Idempotent: an existing subscription is kept (its id returned, ``model_asset_id`` recorded when given).
        """

    @abstractmethod
    def subscription_id(self, deployment: str) -> str | None:
        """The subscription id of ``deployment``, or None when it has none; never raises for an unknown name."""

    @abstractmethod
    def create_monitors(self, deployment: str, provider: dict, *, replace: bool = False) -> list[MonitorInstance]:
        """Create one monitor per entry of ``openscale_custom_metric_provider``; all or nothing.

        Each monitor is checked first (configuration, definition, volume and folders: BadInput or NotFound).
        Without ``replace`` a monitor id configured already is a Conflict. With ``replace`` the deployment's
        monitors become exactly ``provider``: configured ones are updated in place (configuration,
        definition, thresholds) and keep their stored runs, ones not in ``provider`` are deleted with their
        runs, new ones created; so it is idempotent. NotFound when the deployment has no subscription.
        """

    @abstractmethod
    def run(self, deployment: str, monitor_id: str | None = None) -> list[Run]:
        """Evaluate the deployment's monitors (or one) now, each with :meth:`evaluate`, and store the runs.

        A failure inside a definition is a stored failed run, not an exception; a monitor that no longer
        checks (its folder vanished) raises and stores nothing. Not idempotent: each call adds runs.
        """

    def evaluate(self, deployment: str, subscription_id: str, monitor: MonitorInstance) -> Run:
        """Run one monitor's definition once and return the run, without storing it.

        The hook a remote service implements to run the definition where the data is (OpenScale's custom
        metrics provider). The default runs it in this process, reading the monitor's storage volume through
        :mod:`pipeline_utils.volumes`. Blocks until the run ends; raises BadInput or NotFound (naming the
        field) when the monitor's configuration, volume or folders no longer check.
        """
        from pipeline_utils.monitor.checks import check_monitor
        from pipeline_utils.monitor.evaluation import evaluate

        return evaluate(deployment, subscription_id, check_monitor(monitor.monitor_id, monitor.config))

    @abstractmethod
    def status(self, deployment: str) -> list[MonitorStatus]:
        """Each monitor of ``deployment`` with its latest run (None before the first); NotFound without monitors."""

    @abstractmethod
    def list_monitors(self, deployment: str | None = None) -> list[MonitorInstance]:
        """The configured monitors, of one deployment or of all, sorted by deployment and id; empty when none."""

    @abstractmethod
    def history(self, deployment: str, monitor_id: str | None = None, limit: int | None = None) -> list[Run]:
        """Stored runs, oldest first (the last ``limit`` per monitor when given); NotFound for an unknown monitor."""

    @abstractmethod
    def delete(self, deployment: str, monitor_id: str | None = None) -> list[str]:
        """Delete the deployment's monitors (or one) with their runs and return their ids.

        Without ``monitor_id`` the subscription goes too. NotFound when the deployment has no subscription or
        no such monitor (so deleting twice is an error, not a silent success).
        """
