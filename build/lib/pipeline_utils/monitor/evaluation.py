"""One evaluation run: check the configuration, compute the metrics, compare them with their thresholds."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pipeline_utils.backends.local.volumes import resolve_on_volume, volume_path
from pipeline_utils.errors import PipelineError
from pipeline_utils.monitor import definitions
from pipeline_utils.monitor.config import MonitorConfig, parse_monitor_config
from pipeline_utils.monitor.context import EvaluationFailed, run_context
from pipeline_utils.monitor.model import FAILED, FINISHED, Measurement, Run


@dataclass(frozen=True)
class CheckedMonitor:
    """A monitor whose configuration, definition and folders were checked."""

    config: MonitorConfig
    definition: definitions.MonitorDefinition
    volume: Path


def now_iso() -> str:
    """The current UTC time, ISO 8601 with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def check_monitor(monitor_id: str, raw: dict) -> CheckedMonitor:
    """Check a monitor configuration against its definition and volume; a PipelineError names the field."""
    config = parse_monitor_config(monitor_id, raw)
    definition = definitions.resolve(monitor_id, raw)
    if definition.metrics is not None:
        unknown = sorted(set(config.thresholds) - definition.metrics)
        if unknown:
            raise PipelineError(
                f"openscale_custom_metric_provider.{monitor_id}.thresholds.{unknown[0]}: {definition.name}"
                f" does not compute {unknown[0]!r} (it computes: {', '.join(sorted(definition.metrics))})"
            )
    try:
        volume = volume_path(config.volume_display_name)
    except PipelineError as exc:
        raise PipelineError(f"openscale_custom_metric_provider.{monitor_id}.{exc}") from exc
    for key in ("dir_gt", "dir_pred"):
        try:
            resolve_on_volume(volume, getattr(config, key))
        except PipelineError as exc:
            raise PipelineError(f"openscale_custom_metric_provider.{monitor_id}.{key}: {exc}") from exc
    if not resolve_on_volume(volume, config.dir_gt).is_dir():
        raise PipelineError(
            f"openscale_custom_metric_provider.{monitor_id}.dir_gt: folder {config.dir_gt!r} not found on"
            f" volume {config.volume_display_name!r}"
        )
    return CheckedMonitor(config, definition, volume)


def _definition_input(config: MonitorConfig) -> dict:
    return config.raw | {"most_recent": config.most_recent, "min_files": config.min_files}


def _measurements(values: dict[str, float], config: MonitorConfig, problems: list[str]) -> list[Measurement]:
    result = []
    for metric, value in values.items():
        limit = config.thresholds.get(metric)
        result.append(
            Measurement(
                metric,
                value,
                limit.value if limit else None,
                limit.direction if limit else None,
                limit.violated(value) if limit else False,
            )
        )
    for metric in sorted(set(config.thresholds) - set(values)):
        problems.append(f"{metric}: not computed in this run; its threshold was not checked")
    return result


def _clean(values: object, problems: list[str]) -> dict[str, float]:
    if not isinstance(values, dict):
        raise EvaluationFailed(f"the definition returned {type(values).__name__}, not a dict of metrics")
    clean: dict[str, float] = {}
    for metric, value in values.items():
        number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        if number is None or not math.isfinite(number):
            problems.append(f"{metric}: value {value!r} is not a finite number; not stored")
        else:
            clean[str(metric)] = number
    return clean


def evaluate(deployment: str, subscription_id: str, checked: CheckedMonitor) -> Run:
    """Run a checked monitor's definition once; a failure inside it becomes a failed run with its reason."""
    config = checked.config
    started = now_iso()
    state, reason, measurements = FINISHED, None, []
    with run_context(deployment, config.monitor_id) as ctx:
        try:
            values = _clean(checked.definition.function(_definition_input(config), checked.volume), ctx.problems)
            measurements = _measurements(values, config, ctx.problems)
        except EvaluationFailed as exc:
            state, reason = FAILED, str(exc)
        except Exception as exc:
            state, reason = FAILED, f"{checked.definition.name} raised {type(exc).__name__}: {exc}"
    return Run(
        run_id=str(uuid.uuid4()),
        deployment=deployment,
        subscription_id=subscription_id,
        monitor_id=config.monitor_id,
        definition=checked.definition.name,
        started_at=started,
        finished_at=now_iso(),
        state=state,
        reason=" ".join(reason.split()) if reason else None,
        measurements=measurements,
        problems=list(ctx.problems),
    )
