"""The evaluation run in progress, visible to metric definitions: its deployment and its problem notes."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field

from pipeline_utils.errors import PipelineError


class EvaluationFailed(PipelineError):
    """Raised by a metric definition when a run cannot produce values; the run is stored as failed."""


@dataclass
class RunContext:
    """What a definition may know about the run: the deployment, the monitor id and the notes so far."""

    deployment: str
    monitor_id: str
    problems: list[str] = field(default_factory=list)


_CURRENT: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar("monitor_run", default=None)


@contextlib.contextmanager
def run_context(deployment: str, monitor_id: str) -> Iterator[RunContext]:
    """Make a fresh :class:`RunContext` current for the duration of one evaluation."""
    ctx = RunContext(deployment, monitor_id)
    token = _CURRENT.set(ctx)
    try:
        yield ctx
    finally:
        _CURRENT.reset(token)


def current_run() -> RunContext | None:
    """The run being evaluated, or None outside an evaluation (e.g. a definition called directly)."""
    return _CURRENT.get()


def note_problem(message: str) -> None:
    """Record a non-fatal problem (e.g. a broken image skipped) on the current run."""
    ctx = _CURRENT.get()
    if ctx is not None:
        ctx.problems.append(" ".join(str(message).split()))
