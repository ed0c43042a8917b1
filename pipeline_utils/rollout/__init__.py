"""Rollouts gated by monitors: traffic moved step by step to a new deployment, rolled back when a monitor objects."""

from pipeline_utils.rollout.api import (
    abort_rollout,
    check_rollout,
    list_rollouts,
    plan_rollout,
    read_check_request,
    resume_rollout,
    rollout_status,
    run_rollout,
)
from pipeline_utils.rollout.store import COMPLETED, INTERRUPTED, ROLLED_BACK, RUNNING, STOPPED, Event, Rollout

__all__ = [
    "COMPLETED", "INTERRUPTED", "ROLLED_BACK", "RUNNING", "STOPPED", "Event", "Rollout", "abort_rollout",
    "check_rollout", "list_rollouts", "plan_rollout", "read_check_request", "resume_rollout", "rollout_status",
    "run_rollout",
]
