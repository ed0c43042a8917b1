"""One-line entry points for the CLI and the notebooks (A3): configure, run, status, list, history, delete."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline_utils.errors import BadInput, Conflict, PipelineError
from pipeline_utils.monitor.model import MonitorInstance, MonitorStatus, Run
from pipeline_utils.monitor.service import MonitorService


@dataclass(frozen=True)
class MonitorSetup:
    """What ``monitor create`` did: the subscription id (to write into the entry), the monitors, first runs."""

    deployment: str
    subscription_id: str
    monitors: list[MonitorInstance]
    runs: list[Run] = field(default_factory=list)

    def entry_update(self) -> dict[str, Any]:
        """The metadata fields to write back into the deployment's entry."""
        return {"openscale_subscription_id": self.subscription_id}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for ``--json``)."""
        return {
            "deployment": self.deployment,
            "subscription_id": self.subscription_id,
            "monitors": [m.monitor_id for m in self.monitors],
            "runs": [r.to_dict() for r in self.runs],
        }


def monitor_service(backend: str | None = None) -> MonitorService:
    """The monitor service of the configured backend (selected in :mod:`pipeline_utils.backends`)."""
    from pipeline_utils.backends import get_monitor_service

    return get_monitor_service(backend)


def sync_payload_log(deployment: str) -> int:
    """Copy into the local payload log what the deployment logged where it runs (a deploy target that keeps its
    own log, e.g. ``ray``), so that the monitors read it; how many records. A target that cannot be reached is a
    one-line warning, and the monitors read what the log has."""
    import os
    import sys

    from pipeline_utils.backends import implementation

    target = implementation("deploy_target", os.environ)
    if not getattr(target, "payload_log_elsewhere", False):
        return 0
    try:
        return target.from_environment(os.environ).sync_payload_log(deployment)
    except PipelineError as exc:
        print(f"warning: the payload log of {deployment} was not brought up to date: {exc}", file=sys.stderr)
        return 0


def _has_data(monitor: MonitorInstance) -> bool:
    """Whether a monitor has anything to evaluate yet, as its definition says (``has_data``: definitions module)."""
    from pipeline_utils.monitor.checks import check_definition
    from pipeline_utils.monitor.definitions import has_data

    config, definition = check_definition(monitor.monitor_id, monitor.config)
    return has_data(definition, config.model_dump(), monitor.deployment)


def configure_monitors(
    deployment: str,
    entry: dict,
    model_asset_id: str | None = None,
    *,
    first_run: bool = True,
    replace: bool = False,
    service: MonitorService | None = None,
) -> MonitorSetup:
    """``monitor create``: subscribe the deployment, create its monitors from ``entry``, run those with data (as
    each definition tells: predictions on the volume, or enough payload records for a drift monitor).

    Without ``replace`` a monitor the deployment has already is a Conflict (nothing changes). With
    ``replace`` (re-running the pipeline) the monitors become the entry's: configured ones get the new
    configuration and thresholds and keep their history, ones no longer in the entry are deleted.
    """
    from pipeline_utils.monitor.checks import check_monitor
    from pipeline_utils.monitor.config import PROVIDER

    service = service or monitor_service()
    provider = entry.get(PROVIDER) if isinstance(entry, dict) else None
    if not isinstance(provider, dict) or not provider:
        raise BadInput("no monitors configured (expected monitor id -> config)", field=PROVIDER)
    for monitor_id, raw in provider.items():
        check_monitor(monitor_id, raw)
    existing = service.subscription_id(deployment)
    if existing and not replace:
        configured = sorted({m.monitor_id for m in service.list_monitors(deployment)} & set(provider))
        if configured:
            raise Conflict(
                f"monitor already configured for deployment {deployment!r} (subscription {existing});"
                f" delete it first with `monitor delete --name {deployment}`",
                field=f"{PROVIDER}.{configured[0]}",
            )
    subscription_id = service.create_subscription(deployment, model_asset_id or entry.get("model_asset"))
    try:
        monitors = service.create_monitors(deployment, provider, replace=replace)
    except PipelineError:
        if existing is None:
            service.delete(deployment)
        raise
    runs = []
    if first_run:
        sync_payload_log(deployment)
        for monitor in monitors:
            if _has_data(monitor):
                runs.extend(service.run(deployment, monitor.monitor_id))
    return MonitorSetup(deployment, subscription_id, monitors, runs)


def run_monitors(deployment: str, monitor_id: str | None = None) -> list[Run]:
    """``monitor run``: evaluate the deployment's monitors (or one) and store the runs (the payload log brought up
    to date first)."""
    sync_payload_log(deployment)
    return monitor_service().run(deployment, monitor_id)


def monitor_status(deployment: str) -> list[MonitorStatus]:
    """``monitor status``: each monitor of the deployment with its latest run."""
    return monitor_service().status(deployment)


def list_monitors(deployment: str | None = None) -> list[MonitorInstance]:
    """``monitor list``: configured monitors, of one deployment or all."""
    return monitor_service().list_monitors(deployment)


def monitor_history(deployment: str, monitor_id: str | None = None, limit: int | None = None) -> list[Run]:
    """``monitor history``: stored runs, oldest first."""
    return monitor_service().history(deployment, monitor_id, limit)


def delete_monitors(deployment: str, monitor_id: str | None = None) -> list[str]:
    """``monitor delete``: remove the deployment's monitors (or one) with their runs; returns the ids removed."""
    return monitor_service().delete(deployment, monitor_id)


def history_plots(deployment: str, out_dir: Path, monitor_id: str | None = None) -> list[Path]:
    """``monitor history`` plots: one PNG per monitor under ``out_dir``, a panel per metric against its threshold."""
    from pipeline_utils.monitor.report import plot_history

    return plot_history(monitor_history(deployment, monitor_id), out_dir)
