"""The rollout controller: moves an endpoint's traffic step by step and rolls it back when a monitor objects.

At each step the controller sets the split (compare-and-set on the endpoint's revision, so that a change made
by anyone else is never overwritten), sends the check request pinned to the new deployment when there is one,
holds while traffic flows (watching for an abort, for the endpoint being changed by someone else and for the
new deployment to stay ready), then runs the chosen monitors on the new deployment (their payload-log
definitions read its own payloads) and decides: next step, completed, or rolled back to the split from before
the rollout. Every step, measurement and decision is recorded (:mod:`pipeline_utils.rollout.store`).

The controller survives a restart of the target: calls that meet an unreachable target are retried for
``RESTART_GRACE_S``, and a deployment that is briefly not ready (being restarted with its daemon) is waited for
as long. The split and its revision survive the restart on the target's side, so the rollout carries on. When the
controller's own process dies, the rollout shows as interrupted and ``rollout resume`` carries it on from the
step it was at (or ``rollout abort`` returns the traffic).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pipeline_utils.backends import get_deploy_target
from pipeline_utils.deploy.base import DeploymentTarget
from pipeline_utils.errors import Conflict, PipelineError, Unavailable
from pipeline_utils.monitor.model import FAILED, Run
from pipeline_utils.rollout import store
from pipeline_utils.rollout.plan import step_traffic
from pipeline_utils.rollout.store import COMPLETED, ROLLED_BACK, STOPPED, Rollout

RESTART_GRACE_S = 30.0
POLL_S = 1.0
PROGRESS_EVERY_S = 10.0
READY = "ready"


class RollBack(Exception):
    """Traffic must go back to the split from before the rollout, for ``reason``."""


class Stop(Exception):
    """The rollout must end without touching traffic (someone else changed the endpoint), for ``reason``."""


def _split(traffic: dict[str, int]) -> str:
    return " ".join(f"{name}={weight}" for name, weight in traffic.items()) or "-"


def _violation(run: Run) -> str:
    parts = [f"{m.metric} = {m.value:.4g} violates its {m.direction} limit {m.threshold:g}" for m in run.violations]
    return f"monitor {run.monitor_id}: " + "; ".join(parts)


class Controller:
    """Drives one recorded rollout to its end; :meth:`run` blocks until it has completed, rolled back or stopped."""

    def __init__(self, rollout: Rollout, target: DeploymentTarget | None = None,
                 say: Callable[[str], None] = print, sleep: Callable[[float], None] = time.sleep) -> None:
        self.rollout = rollout
        self.target = target or get_deploy_target()
        self.say = say
        self.sleep = sleep
        self.revision = rollout.revision

    # -- the loop ----------------------------------------------------------------------------------------

    def run(self) -> Rollout:
        """Carry the rollout on from the step it is at to its end; returns it as recorded at the end."""
        rollout = self.rollout
        try:
            if rollout.step < 0 and rollout.check_request is not None:
                self._check(-1, 0)
            for index in range(max(rollout.step, 0), len(rollout.steps)):
                self._step(index)
        except RollBack as exc:
            return self.roll_back(str(exc))
        except Stop as exc:
            return self._end(STOPPED, str(exc))
        return self._end(COMPLETED, f"{rollout.deployment} takes {rollout.steps[-1]} % of {rollout.endpoint}")

    def _step(self, index: int) -> None:
        rollout = self.rollout
        percent = rollout.steps[index]
        traffic = step_traffic(rollout.before_traffic, rollout.deployment, percent)
        view = self._set_split(traffic, self._kept_mirror())
        store.record(rollout.id, "traffic", f"step {index + 1} of {len(rollout.steps)}: {_split(view['traffic'])}",
                     step=index, percent=percent, detail={"traffic": view["traffic"], "mirror": view["mirror"],
                                                          "revision": view["revision"]},
                     advance=True, revision=view["revision"])
        self.say(f"step {index + 1}/{len(rollout.steps)}: {rollout.endpoint} {_split(view['traffic'])}")
        if rollout.check_request is not None:
            self._check(index, percent)
        self._hold(index, percent)
        self._gate(index, percent)
        last = index == len(rollout.steps) - 1
        message = "all monitors passed: " + ("rollout complete" if last else f"on to {rollout.steps[index + 1]} %")
        store.record(rollout.id, "decision", message, step=index, percent=percent,
                     detail={"action": "complete" if last else "next"})
        self.say(message)

    def _kept_mirror(self) -> dict[str, int]:
        """The mirror from before the rollout, unless it copied to the deployment being rolled out."""
        return {name: p for name, p in self.rollout.before_mirror.items() if name != self.rollout.deployment}

    # -- the parts of a step --------------------------------------------------------------------------------

    def _check(self, index: int, percent: int) -> None:
        """Send the check request pinned to the new deployment; anything but a 200 from it rolls back."""
        rollout = self.rollout
        started = time.perf_counter()
        status, served_by, _ = self._retry(
            self.target.predict_endpoint, rollout.endpoint, rollout.check_request, rollout.deployment)
        seconds = round(time.perf_counter() - started, 3)
        ok = status == 200 and served_by == rollout.deployment
        message = f"pinned check request: HTTP {status} from {served_by or 'no deployment'} in {seconds} s"
        store.record(rollout.id, "check", message, step=index, percent=percent,
                     detail={"status": status, "served_by": served_by, "seconds": seconds, "ok": ok})
        self.say(message)
        if not ok:
            raise RollBack(f"the check request pinned to {rollout.deployment} was answered HTTP {status} by"
                           f" {served_by or 'no deployment'}")

    def _hold(self, index: int, percent: int) -> None:
        """Let traffic flow for the hold, watching for an abort, an outside change and the deployment's health."""
        rollout = self.rollout
        started = time.monotonic()
        deadline = started + rollout.hold_s
        shown = started
        unready_since: float | None = None
        while True:
            current = store.get(rollout.id)
            if current.abort_requested:
                raise RollBack(f"aborted: {current.abort_requested}")
            view = self._retry(self.target.get_endpoint, rollout.endpoint)
            if view["revision"] != self.revision:
                raise Stop(f"endpoint {rollout.endpoint} was changed outside the rollout (revision {view['revision']},"
                           f" not {self.revision}); its traffic is left as it is now: {_split(view['traffic'])}")
            status = view["status"].get(rollout.deployment)
            now = time.monotonic()
            if status == READY:
                unready_since = None
            elif unready_since is None:
                unready_since = now
            elif now - unready_since > RESTART_GRACE_S:
                raise RollBack(f"{rollout.deployment} has not been ready for {RESTART_GRACE_S:g} s (it is {status})")
            if now >= deadline and unready_since is None:
                break
            if now - shown >= PROGRESS_EVERY_S:
                shown = now
                self.say(f"  holding at {percent} %: {now - started:.0f} s of {rollout.hold_s:g} s")
            self.sleep(max(0.0, min(POLL_S, deadline - now)) or POLL_S / 4)
        store.record(rollout.id, "hold", f"held {time.monotonic() - started:.1f} s at {percent} %", step=index,
                     percent=percent, detail={"seconds": round(time.monotonic() - started, 3)})

    def _gate(self, index: int, percent: int) -> None:
        """Run every chosen monitor on the new deployment, record each run, roll back on a failure or violation."""
        from pipeline_utils.monitor.api import run_monitors

        rollout = self.rollout
        problems = []
        for monitor_id in rollout.monitors:
            try:
                runs = self._retry(run_monitors, rollout.deployment, monitor_id)
            except PipelineError as exc:
                store.record(rollout.id, "evaluation", f"monitor {monitor_id}: could not run: {exc}", step=index,
                             percent=percent, detail={"monitor_id": monitor_id, "state": FAILED, "reason": str(exc)})
                problems.append(f"monitor {monitor_id} could not run: {exc}")
                continue
            for run in runs:
                problems.extend(self._record_run(index, percent, run))
        if problems:
            raise RollBack("; ".join(problems))

    def _record_run(self, index: int, percent: int, run: Run) -> list[str]:
        if run.state == FAILED:
            message, problems = f"monitor {run.monitor_id}: evaluation failed: {run.reason}", [
                f"the evaluation of monitor {run.monitor_id} failed: {run.reason}"]
        elif run.issues:
            message, problems = _violation(run), [_violation(run)]
        else:
            message, problems = f"monitor {run.monitor_id}: {len(run.measurements)} metrics within limits", []
        store.record(self.rollout.id, "evaluation", message, step=index, percent=percent,
                     detail={"monitor_id": run.monitor_id, "run_id": run.run_id, "state": run.state,
                             "reason": run.reason, "issues": run.issues,
                             "measurements": [m.__dict__ for m in run.measurements]})
        self.say(message)
        return problems

    # -- ending --------------------------------------------------------------------------------------------

    def roll_back(self, reason: str) -> Rollout:
        """Return the endpoint to its split from before the rollout and record why; stopped when it cannot."""
        rollout = store.get(self.rollout.id)
        store.record(rollout.id, "decision", f"roll back: {reason}", step=rollout.step, percent=rollout.percent,
                     detail={"action": "rollback"})
        self.say(f"rolling back: {reason}")
        try:
            view = self._set_split(rollout.before_traffic, rollout.before_mirror)
        except (RollBack, Stop, PipelineError) as exc:
            return self._end(STOPPED, f"{reason}; the traffic could not be returned: {exc}")
        store.record(rollout.id, "traffic", f"traffic returned: {_split(view['traffic'])}", step=rollout.step,
                     percent=0, detail={"traffic": view["traffic"], "mirror": view["mirror"],
                                        "revision": view["revision"]}, revision=view["revision"])
        return self._end(ROLLED_BACK, reason)

    def _end(self, state: str, reason: str) -> Rollout:
        from pipeline_utils.timeutil import now_iso

        ended = store.record(self.rollout.id, state, reason, step=store.get(self.rollout.id).step,
                             state=state, reason=reason, ended_at=now_iso())
        self.say(f"rollout {ended.id}: {state}: {reason}")
        return ended

    # -- talking to the target -----------------------------------------------------------------------------

    def _set_split(self, traffic: dict[str, int], mirror: dict[str, int]) -> dict[str, Any]:
        """Set the split on the revision the rollout last saw; wait out a deployment that is briefly not ready."""
        deadline = time.monotonic() + RESTART_GRACE_S
        while True:
            try:
                view = self._retry(self.target.set_traffic, self.rollout.endpoint, traffic, mirror,
                                   expected_revision=self.revision)
            except Conflict as exc:
                now = self._retry(self.target.get_endpoint, self.rollout.endpoint)
                if now["revision"] != self.revision:
                    raise Stop(f"endpoint {self.rollout.endpoint} was changed outside the rollout (revision "
                               f"{now['revision']}, not {self.revision}); its traffic is left as it is now: "
                               f"{_split(now['traffic'])}") from None
                if time.monotonic() > deadline:
                    raise RollBack(str(exc)) from None
                self.sleep(POLL_S)
                continue
            self.revision = view["revision"]
            return view

    def _retry(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``call``, retried while the target cannot be reached (it restarts), for up to ``RESTART_GRACE_S``."""
        deadline = time.monotonic() + RESTART_GRACE_S
        while True:
            try:
                return call(*args, **kwargs)
            except Unavailable:
                if time.monotonic() > deadline:
                    raise
                self.sleep(POLL_S / 2)
