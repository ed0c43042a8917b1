"""The run index: which notebooks ran, when, with what parameters, and how they ended."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pipeline_utils.config.settings import mlops_home
from pipeline_utils.errors import BadInput, NotFound
from pipeline_utils.store import connect, register_schema, transaction
from pipeline_utils.timeutil import now_iso

register_schema(
    "runs",
    """
    CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, pid INTEGER,
        started_at TEXT NOT NULL, ended_at TEXT, duration_s REAL, parameters TEXT NOT NULL, error TEXT);
    CREATE TABLE IF NOT EXISTS run_notebooks (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE, seq INTEGER NOT NULL,
        notebook TEXT NOT NULL, path TEXT NOT NULL, status TEXT NOT NULL, started_at TEXT NOT NULL,
        ended_at TEXT, duration_s REAL, parameters TEXT NOT NULL, error TEXT,
        PRIMARY KEY (run_id, seq));
    """,
)

RUNNING, SUCCEEDED, FAILED, INTERRUPTED = "running", "succeeded", "failed", "interrupted"


def new_run_id() -> str:
    """A run id that sorts by start time (UTC): ``YYYYmmddTHHMMSSffffffZ-xxxx``."""
    return f"{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')}-{secrets.token_hex(2)}"


def _seconds_since(started_at: str, ended_at: str) -> float:
    return (datetime.fromisoformat(ended_at) - datetime.fromisoformat(started_at)).total_seconds()


def runs_dir() -> Path:
    """Where executed notebooks are kept: ``$MLOPS_HOME/runs``."""
    return mlops_home() / "runs"


def _alive(pid: int | None) -> bool:
    import psutil

    return bool(pid) and psutil.pid_exists(pid)


@dataclass
class NotebookRecord:
    """One executed notebook of a run."""

    seq: int
    notebook: str
    path: str
    status: str
    started_at: str
    ended_at: str | None
    duration_s: float | None
    parameters: dict
    error: str | None


@dataclass
class RunRecord:
    """One run: a CLI command or pipeline execution, with the notebooks it executed."""

    id: str
    kind: str
    status: str
    started_at: str
    ended_at: str | None
    duration_s: float | None
    parameters: dict
    error: str | None
    notebooks: list[NotebookRecord] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        """The folder holding this run's executed notebooks."""
        return runs_dir() / self.id


def start_run(kind: str, parameters: dict) -> str:
    """Record a new running run and create its folder; returns its id."""
    run_id = new_run_id()
    (runs_dir() / run_id).mkdir(parents=True, exist_ok=True)
    conn = connect()
    with transaction(conn):
        conn.execute(
            "INSERT INTO runs (id, kind, status, pid, started_at, parameters) VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, kind, RUNNING, os.getpid(), now_iso(), json.dumps(parameters, default=str)),
        )
    return run_id


def finish_run(run_id: str, status: str, error: str | None = None) -> None:
    """Record how a run ended; notebooks of it still marked running (a kernel that was shut down) end with it."""
    conn = connect()
    with transaction(conn):
        row = conn.execute("SELECT started_at FROM runs WHERE id = ?", (run_id,)).fetchone()
        ended = now_iso()
        conn.execute(
            "UPDATE runs SET status = ?, ended_at = ?, duration_s = ?, error = ? WHERE id = ?",
            (status, ended, _seconds_since(row["started_at"], ended), error, run_id),
        )
        for left in conn.execute(
            "SELECT seq, started_at FROM run_notebooks WHERE run_id = ? AND status = ?", (run_id, RUNNING)
        ).fetchall():
            conn.execute(
                "UPDATE run_notebooks SET status = ?, ended_at = ?, duration_s = ? WHERE run_id = ? AND seq = ?",
                (status, ended, _seconds_since(left["started_at"], ended), run_id, left["seq"]),
            )


def start_notebook(run_id: str, notebook: str, parameters: dict) -> tuple[int, Path]:
    """Reserve the next slot of a run for a notebook; returns (seq, output path)."""
    conn = connect()
    with transaction(conn):
        if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
            raise NotFound(f"unknown run {run_id!r}", field="MLOPS_RUN_ID")
        seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM run_notebooks WHERE run_id = ?", (run_id,))
        seq = seq.fetchone()[0]
        taken = {r["path"] for r in conn.execute("SELECT path FROM run_notebooks WHERE run_id = ?", (run_id,))}
        name, stem, suffix = notebook, Path(notebook).stem, Path(notebook).suffix
        counter = 2
        while name in taken:
            name, counter = f"{stem}-{counter}{suffix}", counter + 1
        conn.execute(
            "INSERT INTO run_notebooks (run_id, seq, notebook, path, status, started_at, parameters)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, seq, notebook, name, RUNNING, now_iso(), json.dumps(parameters, default=str)),
        )
    return seq, runs_dir() / run_id / name


def finish_notebook(run_id: str, seq: int, status: str, error: str | None = None) -> None:
    """Record how one notebook of a run ended."""
    conn = connect()
    with transaction(conn):
        row = conn.execute(
            "SELECT started_at FROM run_notebooks WHERE run_id = ? AND seq = ?", (run_id, seq)
        ).fetchone()
        ended = now_iso()
        conn.execute(
            "UPDATE run_notebooks SET status = ?, ended_at = ?, duration_s = ?, error = ?"
            " WHERE run_id = ? AND seq = ?",
            (status, ended, _seconds_since(row["started_at"], ended), error, run_id, seq),
        )


def _record(row, notebooks: list[NotebookRecord]) -> RunRecord:
    status = row["status"]
    error = row["error"]
    if status == RUNNING and not _alive(row["pid"]):
        status, error = FAILED, error or "interrupted: the process running it is gone"
    return RunRecord(
        id=row["id"],
        kind=row["kind"],
        status=status,
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        duration_s=row["duration_s"],
        parameters=json.loads(row["parameters"]),
        error=error,
        notebooks=notebooks,
    )


def _notebooks(conn, run_id: str) -> list[NotebookRecord]:
    rows = conn.execute("SELECT * FROM run_notebooks WHERE run_id = ? ORDER BY seq", (run_id,)).fetchall()
    return [
        NotebookRecord(
            seq=r["seq"],
            notebook=r["notebook"],
            path=str(runs_dir() / run_id / r["path"]),
            status=r["status"],
            started_at=r["started_at"],
            ended_at=r["ended_at"],
            duration_s=r["duration_s"],
            parameters=json.loads(r["parameters"]),
            error=r["error"],
        )
        for r in rows
    ]


def list_runs(limit: int = 50) -> list[RunRecord]:
    """The most recent runs, newest first, each with its notebooks."""
    conn = connect()
    rows = conn.execute("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    return [_record(row, _notebooks(conn, row["id"])) for row in rows]


def get_run(run_id: str) -> RunRecord:
    """One run by id (a unique prefix is enough)."""
    conn = connect()
    rows = conn.execute("SELECT * FROM runs WHERE id LIKE ? ORDER BY id", (f"{run_id}%",)).fetchall()
    if not rows:
        raise NotFound(f"no run {run_id!r}", field="RUN_ID")
    if len(rows) > 1:
        raise BadInput(f"{run_id!r} matches {len(rows)} runs; give more of the id", field="RUN_ID")
    return _record(rows[0], _notebooks(conn, rows[0]["id"]))
