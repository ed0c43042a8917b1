"""Rollouts and their events in the state database: what was planned, every step, measurement and decision.

One rollout may run per endpoint at a time (a unique index on running rollouts). The process driving a rollout
(its controller) records its pid; a running rollout whose controller is gone shows as ``interrupted`` and can be
resumed or aborted. Every change is one transaction, so a rollout is never half-recorded.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pipeline_utils.errors import Conflict, NotFound
from pipeline_utils.store import connect, register_schema, transaction
from pipeline_utils.timeutil import now_iso

RUNNING, COMPLETED, ROLLED_BACK, STOPPED, INTERRUPTED = "running", "completed", "rolled-back", "stopped", "interrupted"
FINAL_STATES = (COMPLETED, ROLLED_BACK, STOPPED)

register_schema(
    "rollouts",
    """
    CREATE TABLE IF NOT EXISTS rollouts (
        id TEXT PRIMARY KEY, endpoint TEXT NOT NULL, deployment TEXT NOT NULL, steps TEXT NOT NULL,
        hold_s REAL NOT NULL, monitors TEXT NOT NULL, check_request TEXT, before_traffic TEXT NOT NULL,
        before_mirror TEXT NOT NULL, state TEXT NOT NULL, step INTEGER NOT NULL, revision INTEGER,
        pid INTEGER, abort_requested TEXT, started_at TEXT NOT NULL, updated_at TEXT NOT NULL, ended_at TEXT,
        reason TEXT, run_id TEXT);
    CREATE UNIQUE INDEX IF NOT EXISTS rollouts_one_running ON rollouts (endpoint) WHERE state = 'running';
    CREATE TABLE IF NOT EXISTS rollout_events (
        rollout_id TEXT NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE, seq INTEGER NOT NULL,
        at TEXT NOT NULL, step INTEGER, percent INTEGER, kind TEXT NOT NULL, message TEXT NOT NULL,
        detail TEXT NOT NULL, PRIMARY KEY (rollout_id, seq));
    """,
)


@dataclass(frozen=True)
class Event:
    """One recorded fact of a rollout: a traffic change, a check, a hold, an evaluation or a decision."""

    seq: int
    at: str
    step: int | None
    percent: int | None
    kind: str
    message: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rollout:
    """A rollout of ``deployment`` on ``endpoint``: its plan, where it stands and why it ended."""

    id: str
    endpoint: str
    deployment: str
    steps: list[int]
    hold_s: float
    monitors: list[str]
    check_request: Any
    before_traffic: dict[str, int]
    before_mirror: dict[str, int]
    state: str
    step: int
    revision: int | None
    pid: int | None
    abort_requested: str | None
    started_at: str
    updated_at: str
    ended_at: str | None
    reason: str | None
    run_id: str | None

    @property
    def percent(self) -> int:
        """The share of traffic the current step gives the deployment (0 before the first step)."""
        return self.steps[self.step] if 0 <= self.step < len(self.steps) else 0

    @property
    def final(self) -> bool:
        """Whether the rollout has ended (completed, rolled back or stopped)."""
        return self.state in FINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for ``--json``), without the check request (it may be large)."""
        return {k: v for k, v in self.__dict__.items() if k != "check_request"} | {"percent": self.percent}


def new_rollout_id() -> str:
    """A rollout id that sorts by start time (UTC): ``ro-YYYYmmddTHHMMSSZ-xxxx``."""
    return f"ro-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(2)}"


def _alive(pid: int | None) -> bool:
    import psutil

    return bool(pid) and psutil.pid_exists(pid)


def _rollout(row: sqlite3.Row) -> Rollout:
    state = row["state"]
    if state == RUNNING and not _alive(row["pid"]):
        state = INTERRUPTED
    return Rollout(
        id=row["id"], endpoint=row["endpoint"], deployment=row["deployment"], steps=json.loads(row["steps"]),
        hold_s=row["hold_s"], monitors=json.loads(row["monitors"]),
        check_request=json.loads(row["check_request"]) if row["check_request"] is not None else None,
        before_traffic=json.loads(row["before_traffic"]), before_mirror=json.loads(row["before_mirror"]),
        state=state, step=row["step"], revision=row["revision"], pid=row["pid"],
        abort_requested=row["abort_requested"], started_at=row["started_at"], updated_at=row["updated_at"],
        ended_at=row["ended_at"], reason=row["reason"], run_id=row["run_id"],
    )


def _insert_event(conn: sqlite3.Connection, rollout_id: str, kind: str, message: str, *, step: int | None = None,
                  percent: int | None = None, detail: dict[str, Any] | None = None) -> None:
    seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM rollout_events WHERE rollout_id = ?", (rollout_id,))
    conn.execute(
        "INSERT INTO rollout_events (rollout_id, seq, at, step, percent, kind, message, detail)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (rollout_id, seq.fetchone()[0], now_iso(), step, percent, kind, " ".join(message.split()),
         json.dumps(detail or {}, default=str)),
    )


def _running_on(conn: sqlite3.Connection, endpoint: str) -> Rollout | None:
    row = conn.execute("SELECT * FROM rollouts WHERE endpoint = ? AND state = ?", (endpoint, RUNNING)).fetchone()
    return _rollout(row) if row is not None else None


def refuse_if_under_way(endpoint: str, conn: sqlite3.Connection | None = None) -> None:
    """Conflict (naming ``--endpoint``) while a rollout runs on the endpoint or waits to be resumed or aborted."""
    other = _running_on(conn or connect(), endpoint)
    if other is not None:
        how = "its controller is gone: resume or abort it" if other.state == INTERRUPTED else "it is running"
        raise Conflict(f"rollout {other.id} of {other.deployment} is under way on endpoint {endpoint!r} ({how})",
                       field="--endpoint")


def create(endpoint: str, deployment: str, steps: list[int], hold_s: float, monitors: list[str],
           check_request: Any, before_traffic: dict[str, int], before_mirror: dict[str, int], revision: int,
           run_id: str | None) -> Rollout:
    """Record a new running rollout driven by this process; Conflict while another runs on the endpoint."""
    rollout_id = new_rollout_id()
    now = now_iso()
    conn = connect()
    with transaction(conn):
        refuse_if_under_way(endpoint, conn)
        conn.execute(
            "INSERT INTO rollouts (id, endpoint, deployment, steps, hold_s, monitors, check_request, before_traffic,"
            " before_mirror, state, step, revision, pid, started_at, updated_at, run_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rollout_id, endpoint, deployment, json.dumps(steps), hold_s, json.dumps(monitors),
             json.dumps(check_request) if check_request is not None else None, json.dumps(before_traffic),
             json.dumps(before_mirror), RUNNING, -1, revision, os.getpid(), now, now, run_id),
        )
        shown = ", ".join(f"{p} %" for p in steps)
        _insert_event(conn, rollout_id, "plan", f"roll out {deployment} on {endpoint} in steps of {shown}, holding"
                      f" {hold_s:g} s each, gated by {', '.join(monitors) or 'no monitor'}",
                      detail={"traffic": before_traffic, "mirror": before_mirror, "revision": revision})
    return get(rollout_id)


def get(rollout_id: str) -> Rollout:
    """One rollout by id (a unique prefix is enough); NotFound naming ``--id``."""
    conn = connect()
    rows = conn.execute("SELECT * FROM rollouts WHERE id LIKE ? ORDER BY id", (f"{rollout_id}%",)).fetchall()
    if len(rows) != 1:
        problem = f"no rollout {rollout_id!r}" if not rows else f"{rollout_id!r} matches {len(rows)} rollouts"
        raise NotFound(problem, field="--id")
    return _rollout(rows[0])


def latest(endpoint: str) -> Rollout:
    """The newest rollout on ``endpoint``; NotFound naming ``--endpoint`` when it never had one."""
    row = connect().execute(
        "SELECT * FROM rollouts WHERE endpoint = ? ORDER BY id DESC LIMIT 1", (endpoint,)
    ).fetchone()
    if row is None:
        raise NotFound(f"endpoint {endpoint!r} has had no rollout", field="--endpoint")
    return _rollout(row)


def list_rollouts(endpoint: str | None = None, limit: int = 20) -> list[Rollout]:
    """The newest rollouts first, of one endpoint or of all."""
    conn = connect()
    if endpoint is None:
        rows = conn.execute("SELECT * FROM rollouts ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    else:
        rows = conn.execute("SELECT * FROM rollouts WHERE endpoint = ? ORDER BY id DESC LIMIT ?",
                            (endpoint, limit)).fetchall()
    return [_rollout(row) for row in rows]


def events(rollout_id: str) -> list[Event]:
    """A rollout's events, oldest first."""
    rows = connect().execute("SELECT * FROM rollout_events WHERE rollout_id = ? ORDER BY seq", (rollout_id,))
    return [Event(r["seq"], r["at"], r["step"], r["percent"], r["kind"], r["message"], json.loads(r["detail"]))
            for r in rows.fetchall()]


def record(rollout_id: str, kind: str, message: str, *, step: int | None = None, percent: int | None = None,
           detail: dict[str, Any] | None = None, advance: bool = False, **changes: Any) -> Rollout:
    """Add one event at ``step`` and apply ``changes`` to the rollout (e.g. ``revision``, ``state``) together;
    ``advance`` makes ``step`` the rollout's current step."""
    if advance:
        changes["step"] = step
    allowed = {"step", "revision", "state", "reason", "ended_at", "abort_requested"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"not a rollout column: {sorted(unknown)}")
    conn = connect()
    with transaction(conn):
        _insert_event(conn, rollout_id, kind, message, step=step, percent=percent, detail=detail)
        columns = {**changes, "updated_at": now_iso()}
        assignments = ", ".join(f"{name} = ?" for name in columns)
        conn.execute(f"UPDATE rollouts SET {assignments} WHERE id = ?", (*columns.values(), rollout_id))
    return get(rollout_id)


def claim(rollout_id: str) -> Rollout:
    """Take over an interrupted rollout for this process (resume); Conflict when its controller still runs."""
    conn = connect()
    with transaction(conn):
        row = conn.execute("SELECT * FROM rollouts WHERE id = ?", (rollout_id,)).fetchone()
        if row is None:
            raise NotFound(f"no rollout {rollout_id!r}", field="--id")
        current = _rollout(row)
        if current.state != INTERRUPTED:
            raise Conflict(f"rollout {rollout_id} is {current.state}; only an interrupted rollout can be resumed",
                           field="--endpoint")
        conn.execute("UPDATE rollouts SET pid = ?, updated_at = ? WHERE id = ?", (os.getpid(), now_iso(), rollout_id))
        _insert_event(conn, rollout_id, "resume", f"resumed by process {os.getpid()} at step {current.step + 1}",
                      step=current.step, percent=current.percent)
    return get(rollout_id)


def request_abort(rollout_id: str, reason: str) -> Rollout:
    """Ask a running rollout's controller to roll back; recorded as an event."""
    return record(rollout_id, "abort", f"abort requested: {reason}", abort_requested=reason)
