"""Deployment records in the state database: what to serve and whether it should be running.

Only custom-arg NAMES are stored; their values stay in the daemon's memory.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pipeline_utils.backends.local import store

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
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
)


def _row(row: Any) -> dict[str, Any]:
    record = dict(row)
    record["profile"] = json.loads(record["profile"])
    record["custom_arg_names"] = json.loads(record["custom_arg_names"])
    return record


def insert(record: dict[str, Any]) -> None:
    """Add a deployment record."""
    now = time.time()
    conn = store.connect()
    try:
        with store.transaction(conn):
            conn.execute(
                "INSERT INTO runtime_deployments (name, folder, source, flavour, entry, profile, desired,"
                " custom_arg_names, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record["name"],
                    record["folder"],
                    record["source"],
                    record["flavour"],
                    record["entry"],
                    json.dumps(record["profile"]),
                    record.get("desired", "stopped"),
                    json.dumps(record.get("custom_arg_names", [])),
                    now,
                    now,
                ),
            )
    finally:
        conn.close()


def update(name: str, **fields: Any) -> None:
    """Change fields of a record (profile and custom_arg_names are JSON-encoded)."""
    encoded = {k: json.dumps(v) if k in ("profile", "custom_arg_names") else v for k, v in fields.items()}
    encoded["updated_at"] = time.time()
    assignments = ", ".join(f"{k} = ?" for k in encoded)
    conn = store.connect()
    try:
        with store.transaction(conn):
            conn.execute(f"UPDATE runtime_deployments SET {assignments} WHERE name = ?", (*encoded.values(), name))
    finally:
        conn.close()


def delete(name: str) -> None:
    """Remove a record."""
    conn = store.connect()
    try:
        with store.transaction(conn):
            conn.execute("DELETE FROM runtime_deployments WHERE name = ?", (name,))
    finally:
        conn.close()


def all_records() -> list[dict[str, Any]]:
    """Every deployment record, by name."""
    conn = store.connect()
    try:
        return [_row(r) for r in conn.execute("SELECT * FROM runtime_deployments ORDER BY name")]
    finally:
        conn.close()
