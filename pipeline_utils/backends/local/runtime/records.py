"""Deployment and endpoint records in the state database: what to serve, whether it should be running, and
which endpoint sends how much traffic where, at which revision.

Only custom-arg NAMES are stored; their values stay in memory (the daemon's and its supervisor's). Kernel
settings are plain values and are stored whole.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from typing import Any

from pipeline_utils import store

store.register_schema(
    "runtime",
    """
    CREATE TABLE IF NOT EXISTS runtime_deployments (
        name TEXT PRIMARY KEY,
        folder TEXT NOT NULL,
        source TEXT NOT NULL,
        flavour TEXT NOT NULL,
        entry TEXT NOT NULL,
        profile TEXT NOT NULL,
        desired TEXT NOT NULL DEFAULT 'stopped',
        custom_arg_names TEXT NOT NULL DEFAULT '[]',
        settings TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS runtime_endpoints (
        name TEXT PRIMARY KEY,
        deployments TEXT NOT NULL,
        traffic TEXT NOT NULL,
        mirror TEXT NOT NULL,
        revision INTEGER NOT NULL DEFAULT 1,
        updated_at REAL NOT NULL
    );
    """,
)


JSON_FIELDS = ("profile", "custom_arg_names", "settings")
_migrated: set[str] = set()


ADDED_COLUMNS = (
    ("runtime_deployments", "settings", "TEXT NOT NULL DEFAULT '{}'"),
    ("runtime_endpoints", "revision", "INTEGER NOT NULL DEFAULT 1"),
)


def _connect() -> sqlite3.Connection:
    """A connection to the state database, with columns added since the table was first made."""
    conn = store.connect()
    path = str(store.db_path())
    if path not in _migrated:
        for table, column, kind in ADDED_COLUMNS:
            if column not in {row["name"] for row in conn.execute(f"PRAGMA table_info({table})")}:
                with contextlib.suppress(sqlite3.OperationalError):
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        _migrated.add(path)
    return conn


def _row(row: Any) -> dict[str, Any]:
    record = dict(row)
    for field in JSON_FIELDS:
        record[field] = json.loads(record[field])
    return record


def insert(record: dict[str, Any]) -> None:
    """Add a deployment record."""
    now = time.time()
    conn = _connect()
    try:
        with store.transaction(conn):
            conn.execute(
                "INSERT INTO runtime_deployments (name, folder, source, flavour, entry, profile, desired,"
                " custom_arg_names, settings, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record["name"],
                    record["folder"],
                    record["source"],
                    record["flavour"],
                    record["entry"],
                    json.dumps(record["profile"]),
                    record.get("desired", "stopped"),
                    json.dumps(record.get("custom_arg_names", [])),
                    json.dumps(record.get("settings", {})),
                    now,
                    now,
                ),
            )
    finally:
        conn.close()


def update(name: str, **fields: Any) -> None:
    """Change fields of a record (those of ``JSON_FIELDS`` are JSON-encoded)."""
    encoded = {k: json.dumps(v) if k in JSON_FIELDS else v for k, v in fields.items()}
    encoded["updated_at"] = time.time()
    assignments = ", ".join(f"{k} = ?" for k in encoded)
    conn = _connect()
    try:
        with store.transaction(conn):
            conn.execute(f"UPDATE runtime_deployments SET {assignments} WHERE name = ?", (*encoded.values(), name))
    finally:
        conn.close()


def delete(name: str) -> None:
    """Remove a record."""
    conn = _connect()
    try:
        with store.transaction(conn):
            conn.execute("DELETE FROM runtime_deployments WHERE name = ?", (name,))
    finally:
        conn.close()


def all_records() -> list[dict[str, Any]]:
    """Every deployment record, by name."""
    conn = _connect()
    try:
        return [_row(r) for r in conn.execute("SELECT * FROM runtime_deployments ORDER BY name")]
    finally:
        conn.close()


ENDPOINT_FIELDS = ("deployments", "traffic", "mirror")


def save_endpoint(record: dict[str, Any]) -> None:
    """Store an endpoint whole (attached deployments, traffic and mirror maps, revision) in one transaction."""
    conn = _connect()
    try:
        with store.transaction(conn):
            conn.execute(
                "INSERT OR REPLACE INTO runtime_endpoints (name, deployments, traffic, mirror, revision, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    record["name"],
                    *(json.dumps(record[field]) for field in ENDPOINT_FIELDS),
                    int(record["revision"]),
                    time.time(),
                ),
            )
    finally:
        conn.close()


def delete_endpoint(name: str) -> None:
    """Remove an endpoint record."""
    conn = _connect()
    try:
        with store.transaction(conn):
            conn.execute("DELETE FROM runtime_endpoints WHERE name = ?", (name,))
    finally:
        conn.close()


def all_endpoints() -> list[dict[str, Any]]:
    """Every endpoint record, by name, with its revision."""
    conn = _connect()
    try:
        rows = conn.execute("SELECT * FROM runtime_endpoints ORDER BY name").fetchall()
    finally:
        conn.close()
    return [
        {"name": row["name"], **{f: json.loads(row[f]) for f in ENDPOINT_FIELDS}, "revision": row["revision"]}
        for row in rows
    ]
