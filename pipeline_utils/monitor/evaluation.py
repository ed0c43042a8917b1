"""One evaluation run of a checked monitor: compute its metrics here and compare them with their thresholds."""

from __future__ import annotations

import math
import uuid

from pipeline_utils.monitor.checks import CheckedMonitor
from pipeline_utils.monitor.config import MonitorConfig
from pipeline_utils.monitor.context import EvaluationFailed, run_context
from pipeline_utils.monitor.model import FAILED, FINISHED, Measurement, Run
from pipeline_utils.timeutil import now_iso


def _definition_input(config: MonitorConfig) -> dict:
    """The whole configuration, defaults filled in and extra keys included, as the definition receives it."""
    return config.model_dump()


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
    """Run a checked monitor's definition once, here; a failure inside it becomes a failed run with its reason."""
    config = checked.config
    started = now_iso()
    state, reason, measurements = FINISHED, None, []
    with run_context(deployment, checked.monitor_id) as ctx:
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
        monitor_id=checked.monitor_id,
        definition=checked.definition.name,
        started_at=started,
        finished_at=now_iso(),
        state=state,
        reason=" ".join(reason.split()) if reason else None,
        measurements=measurements,
        problems=list(ctx.problems),
    )
