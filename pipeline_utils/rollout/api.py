"""One-line entry points for the CLI and the rollout notebook: start, resume, abort, and where a rollout stands."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from pipeline_utils.backends import get_deploy_target
from pipeline_utils.deploy.base import DeploymentTarget
from pipeline_utils.errors import BadInput, Conflict, NotFound
from pipeline_utils.rollout import store
from pipeline_utils.rollout.controller import Controller
from pipeline_utils.rollout.plan import check_steps, live_before, parse_hold
from pipeline_utils.rollout.store import INTERRUPTED, RUNNING, Rollout

RUN_ID_ENV = "MLOPS_RUN_ID"
ABORT_WAIT_S = 120.0


def _chosen_monitors(deployment: str, monitors: list[str] | None) -> list[str]:
    from pipeline_utils.monitor.api import list_monitors

    configured = [m.monitor_id for m in list_monitors(deployment)]
    if monitors is None:
        return configured
    for monitor_id in monitors:
        if monitor_id not in configured:
            have = ", ".join(configured) or "none"
            raise NotFound(f"{deployment} has no monitor {monitor_id!r} (it has: {have})", field="--monitor")
    return list(dict.fromkeys(monitors))


def read_check_request(path: str | Path | None) -> Any:
    """The JSON request a rollout sends pinned to the new deployment at each step, read from ``path`` (or None)."""
    if not path:
        return None
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: not a readable JSON request ({exc})", field="--request") from None


def check_rollout(endpoint: str, deployment: str, steps: Any, hold: Any, monitors: list[str] | None = None,
                  target: DeploymentTarget | None = None) -> tuple[list[int], float, dict[str, Any], list[str]]:
    """Check a rollout before anything changes: (steps, hold in seconds, the endpoint as it is, the monitors).

    ``monitors`` None gates each step with all of the deployment's monitors, an empty list with none.

    Refused when a step or the hold is malformed, the endpoint or deployment is unknown, the deployment is not
    ready, no other deployment takes traffic to roll out from, a monitor is not one of the deployment's, or another
    rollout is under way on the endpoint (Conflict).
    """
    steps = check_steps(steps, "--steps")
    hold_s = parse_hold(hold, "--hold")
    target = target or get_deploy_target()
    view = target.get_endpoint(endpoint)
    store.refuse_if_under_way(endpoint)
    status = target.get(deployment)["status"]
    if status != "ready":
        raise Conflict(f"deployment {deployment!r} is {status}: only a ready deployment can be rolled out",
                       field="--to")
    if not live_before(view["traffic"], deployment):
        raise BadInput(f"endpoint {endpoint!r} has no other deployment taking traffic to roll out from; give it a"
                       f" split first ('deploy traffic --endpoint {endpoint} --set {deployment}=100' for a first"
                       " release)", field="--endpoint")
    return steps, hold_s, view, _chosen_monitors(deployment, monitors)


def plan_rollout(endpoint: str, deployment: str, steps: Any, hold: Any, monitors: list[str] | None = None,
                 check_request: Any = None, target: DeploymentTarget | None = None) -> Rollout:
    """Check a rollout (:func:`check_rollout`) and record it, traffic untouched yet; returns it.

    The deployment is attached at 0 % when it is not attached yet.
    """
    target = target or get_deploy_target()
    steps, hold_s, view, chosen = check_rollout(endpoint, deployment, steps, hold, monitors, target)
    if deployment not in view["deployments"]:
        view = target.attach(endpoint, deployment)
    return store.create(endpoint, deployment, steps, hold_s, chosen, check_request, dict(view["traffic"]),
                        dict(view["mirror"]), view["revision"], os.environ.get(RUN_ID_ENV))


def drive(rollout: Rollout, target: DeploymentTarget | None = None) -> Rollout:
    """Drive a rollout this process controls to its end (blocks for its holds and evaluations), or roll it back
    when an abort was asked for meanwhile; returns it as it ended."""
    controller = Controller(rollout, target)
    if rollout.abort_requested:
        return controller.roll_back(f"aborted: {rollout.abort_requested}")
    return controller.run()


def run_rollout(rollout_id: str, target: DeploymentTarget | None = None) -> Rollout:
    """Drive a rollout planned by this process to its end; returns it as it ended."""
    return drive(store.get(rollout_id), target)


def resume_rollout(endpoint: str, target: DeploymentTarget | None = None) -> Rollout:
    """Take over the endpoint's interrupted rollout (its controller is gone) and carry it on from its step."""
    return drive(store.claim(store.latest(endpoint).id), target)


def abort_rollout(endpoint: str, reason: str = "by request", wait_s: float = ABORT_WAIT_S,
                  target: DeploymentTarget | None = None) -> Rollout:
    """Roll back the endpoint's rollout under way: its controller does it at its next poll (this waits for that);
    an interrupted one is rolled back here. Conflict when no rollout is under way."""
    rollout = store.latest(endpoint)
    if rollout.state == INTERRUPTED:
        store.request_abort(rollout.id, reason)
        return Controller(store.claim(rollout.id), target).roll_back(f"aborted: {reason}")
    if rollout.state != RUNNING:
        raise Conflict(f"no rollout is under way on {endpoint!r} (the latest, {rollout.id}, is {rollout.state})",
                       field="--endpoint")
    store.request_abort(rollout.id, reason)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        current = store.get(rollout.id)
        if current.final or current.state == INTERRUPTED:
            return current if current.final else abort_rollout(endpoint, reason, 0.0, target)
        time.sleep(0.5)
    return store.get(rollout.id)


def rollout_status(endpoint: str | None = None, rollout_id: str | None = None) -> tuple[Rollout, list[store.Event]]:
    """A rollout (the endpoint's latest, or one by id) with its events."""
    if (endpoint is None) == (rollout_id is None):
        raise BadInput("give an endpoint or a rollout id (one of them)", field="--endpoint")
    rollout = store.get(rollout_id) if rollout_id else store.latest(endpoint)
    return rollout, store.events(rollout.id)


def list_rollouts(endpoint: str | None = None, limit: int = 20) -> list[Rollout]:
    """Recent rollouts, newest first."""
    return store.list_rollouts(endpoint, limit)
