"""Training job records in the shared state database: one row per job, one per worker.

Environment variable values are never stored here, only their names (inside ``spec_json``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from pipeline_utils.store import register_schema, transaction

ACTIVE = ("submitted", "running")

SCHEMA = """
CREATE TABLE IF NOT EXISTS training_jobs (
    job_id TEXT PRIMARY KEY,
    spec_json TEXT NOT NULL,
    status TEXT NOT NULL,
    job_dir TEXT NOT NULL,
    outputs_dir TEXT NOT NULL,
    data_dir TEXT,
    submitted_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    exit_code INTEGER,
    message TEXT NOT NULL DEFAULT '',
    supervisor_pid INTEGER NOT NULL,
    supervisor_started REAL NOT NULL,
    pgid INTEGER,
    master_port INTEGER,
    stop_requested INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS training_workers (
    job_id TEXT NOT NULL REFERENCES training_jobs(job_id) ON DELETE CASCADE,
    rank INTEGER NOT NULL,
    log_path TEXT NOT NULL,
    pid INTEGER,
    started REAL,
    exit_code INTEGER,
    PRIMARY KEY (job_id, rank)
);
"""

register_schema("training", SCHEMA)


def insert_job(conn: sqlite3.Connection, job: dict[str, Any], log_paths: list[str]) -> None:
    """Record a submitted job and its workers' log files in one transaction."""
    with transaction(conn):
        conn.execute(
            "INSERT INTO training_jobs (job_id, spec_json, status, job_dir, outputs_dir, data_dir,"
            " submitted_at, supervisor_pid, supervisor_started)"
            " VALUES (:job_id, :spec_json, 'submitted', :job_dir, :outputs_dir, :data_dir,"
            " :submitted_at, :supervisor_pid, :supervisor_started)",
            job,
        )
        conn.executemany(
            "INSERT INTO training_workers (job_id, rank, log_path) VALUES (?, ?, ?)",
            [(job["job_id"], rank, path) for rank, path in enumerate(log_paths)],
        )


def load_job(conn: sqlite3.Connection, job_id: str) -> sqlite3.Row | None:
    """The job's row, or None."""
    return conn.execute("SELECT * FROM training_jobs WHERE job_id = ?", (job_id,)).fetchone()


def load_workers(conn: sqlite3.Connection, job_id: str) -> list[sqlite3.Row]:
    """The job's worker rows in rank order."""
    return conn.execute("SELECT * FROM training_workers WHERE job_id = ? ORDER BY rank", (job_id,)).fetchall()


def job_ids(conn: sqlite3.Connection) -> list[str]:
    """All job ids, oldest submission first."""
    rows = conn.execute("SELECT job_id FROM training_jobs ORDER BY submitted_at, job_id").fetchall()
    return [row["job_id"] for row in rows]


def mark_running(
    conn: sqlite3.Connection, job_id: str, pgid: int, master_port: int | None, pids: list[tuple[int, float]]
) -> bool:
    """Record the started workers; False when a stop was requested meanwhile (the caller ends them)."""
    with transaction(conn):
        row = load_job(conn, job_id)
        conn.executemany(
            "UPDATE training_workers SET pid = ?, started = ? WHERE job_id = ? AND rank = ?",
            [(pid, started, job_id, rank) for rank, (pid, started) in enumerate(pids)],
        )
        conn.execute(
            "UPDATE training_jobs SET pgid = ?, master_port = ?, started_at = ?,"
            " status = CASE WHEN status = 'submitted' THEN 'running' ELSE status END WHERE job_id = ?",
            (pgid, master_port, time.time(), job_id),
        )
        return row is not None and row["status"] == "submitted" and not row["stop_requested"]


def request_stop(conn: sqlite3.Connection, job_id: str) -> None:
    """Flag the job so its supervisor records it as killed."""
    with transaction(conn):
        conn.execute("UPDATE training_jobs SET stop_requested = 1 WHERE job_id = ?", (job_id,))


def finish_job(
    conn: sqlite3.Connection,
    job_id: str,
    status: str,
    exit_code: int | None,
    message: str,
    worker_codes: dict[int, int] | None = None,
) -> bool:
    """Record the job's end unless an end is already recorded; True when this call recorded it."""
    with transaction(conn):
        row = load_job(conn, job_id)
        if row is None or row["status"] not in ACTIVE:
            return False
        conn.executemany(
            "UPDATE training_workers SET exit_code = ? WHERE job_id = ? AND rank = ?",
            [(code, job_id, rank) for rank, code in (worker_codes or {}).items()],
        )
        conn.execute(
            "UPDATE training_jobs SET status = ?, exit_code = ?, message = ?, ended_at = ? WHERE job_id = ?",
            (status, exit_code, message, time.time(), job_id),
        )
        return True


def spec_of(row: sqlite3.Row) -> dict[str, Any]:
    """The stored public spec (environment names, no values)."""
    return json.loads(row["spec_json"])
