"""Monitors: metric definitions, evaluation runs, thresholds, status, payload logging (definitions: README)."""

from pipeline_utils.monitor.api import (
    MonitorSetup,
    configure_monitors,
    delete_monitors,
    history_plots,
    list_monitors,
    monitor_history,
    monitor_service,
    monitor_status,
    run_monitors,
)
from pipeline_utils.monitor.context import EvaluationFailed, current_run, note_problem
from pipeline_utils.monitor.model import Measurement, MonitorInstance, MonitorStatus, Run
from pipeline_utils.monitor.payload import log_payload
from pipeline_utils.monitor.payloadstore import payload_count
from pipeline_utils.monitor.report import format_status, history_table, run_table, status_table
from pipeline_utils.monitor.service import MonitorService

__all__ = [
    "EvaluationFailed",
    "Measurement",
    "MonitorInstance",
    "MonitorService",
    "MonitorSetup",
    "MonitorStatus",
    "Run",
    "configure_monitors",
    "current_run",
    "delete_monitors",
    "format_status",
    "history_plots",
    "history_table",
    "list_monitors",
    "log_payload",
    "monitor_history",
    "monitor_service",
    "monitor_status",
    "note_problem",
    "payload_count",
    "run_monitors",
    "run_table",
    "status_table",
]
