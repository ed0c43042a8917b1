"""Payload logging: the request and response of each scoring call of a deployment, size-capped, no secrets.

Records go to the ``monitor_payload_log`` table of the state database. Values under keys that look like
secrets (password, token, api key, secret, credential, authorization, cookie, private key) are replaced by
``"***"``; strings longer than ``MAX_STRING_CHARS`` (e.g. serialized images) are replaced by a marker with
their length and SHA-256; a record whose JSON still exceeds ``MAX_RECORD_BYTES`` keeps only its top-level
keys. Each deployment keeps at most ``MAX_RECORDS`` records, oldest dropped first.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
from datetime import datetime, timezone
from typing import Any

from pipeline_utils.backends.local.store import connect, register_schema, transaction

MAX_STRING_CHARS = 1024
MAX_RECORD_BYTES = 16 * 1024
MAX_RECORDS = 100_000
_SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|api[_-]?key|authori[sz]ation|^auth$|credential|cookie|private[_-]?key",
    re.IGNORECASE,
)

register_schema(
    "monitor_payload",
    """
    CREATE TABLE IF NOT EXISTS monitor_payload_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        deployment TEXT NOT NULL,
        logged_at REAL NOT NULL,
        status TEXT,
        elapsed_ms REAL,
        request_json TEXT NOT NULL,
        response_json TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS monitor_payload_by_deployment ON monitor_payload_log (deployment, logged_at);
    """,
)


def redact(value: Any, *, max_chars: int = MAX_STRING_CHARS) -> Any:
    """A JSON-safe copy of ``value`` with secret-looking keys masked and long strings replaced."""
    if isinstance(value, dict):
        return {
            str(k): "***" if _SECRET_KEY.search(str(k)) else redact(v, max_chars=max_chars) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(v, max_chars=max_chars) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes sha256={hashlib.sha256(value).hexdigest()[:16]}>"
    if isinstance(value, str) and len(value) > max_chars:
        digest = hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:16]
        return f"<{len(value)} chars sha256={digest}>"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return redact(str(value), max_chars=max_chars)


def _capped_json(value: Any) -> str:
    text = json.dumps(redact(value), default=str, allow_nan=False) if value is not None else "null"
    if len(text.encode("utf-8")) <= MAX_RECORD_BYTES:
        return text
    keys = sorted(value) if isinstance(value, dict) else []
    return json.dumps({"_truncated": True, "_bytes": len(text), "_keys": keys[:100]})


def log_payload(
    deployment: str,
    request: Any,
    response: Any,
    *,
    status: str | None = None,
    elapsed_ms: float | None = None,
    conn: sqlite3.Connection | None = None,
) -> None:
    """Append one scoring call of ``deployment`` to its payload log (redacted and size-capped)."""
    row = (deployment, time.time(), status, elapsed_ms, _capped_json(request), _capped_json(response))
    own = conn is None
    conn = conn or connect()
    try:
        with transaction(conn):
            cur = conn.execute(
                "INSERT INTO monitor_payload_log (deployment, logged_at, status, elapsed_ms, request_json,"
                " response_json) VALUES (?, ?, ?, ?, ?, ?)",
                row,
            )
            if cur.lastrowid and cur.lastrowid % 1000 == 0:
                _prune(conn, deployment)
    finally:
        if own:
            conn.close()


def _prune(conn: sqlite3.Connection, deployment: str) -> None:
    conn.execute(
        "DELETE FROM monitor_payload_log WHERE deployment = ? AND seq NOT IN"
        " (SELECT seq FROM monitor_payload_log WHERE deployment = ? ORDER BY seq DESC LIMIT ?)",
        (deployment, deployment, MAX_RECORDS),
    )


def payload_count(deployment: str, since: float | None = None, conn: sqlite3.Connection | None = None) -> int:
    """How many scoring calls of ``deployment`` are logged (since the UNIX time ``since``, if given)."""
    own = conn is None
    conn = conn or connect()
    try:
        row = conn.execute(
            "SELECT COUNT(*) FROM monitor_payload_log WHERE deployment = ? AND logged_at >= ?",
            (deployment, since if since is not None else float("-inf")),
        ).fetchone()
        return int(row[0])
    finally:
        if own:
            conn.close()


def payload_records(deployment: str, limit: int = 100) -> list[dict[str, Any]]:
    """The latest ``limit`` logged calls of ``deployment``, newest first."""
    conn = connect()
    try:
        rows = conn.execute(
            "SELECT logged_at, status, elapsed_ms, request_json, response_json FROM monitor_payload_log"
            " WHERE deployment = ? ORDER BY seq DESC LIMIT ?",
            (deployment, limit),
        ).fetchall()
    finally:
        conn.close()
    return [
        {
            "logged_at": datetime.fromtimestamp(r["logged_at"], timezone.utc).isoformat(timespec="seconds"),
            "status": r["status"],
            "elapsed_ms": r["elapsed_ms"],
            "request": json.loads(r["request_json"]),
            "response": json.loads(r["response_json"]),
        }
        for r in rows
    ]
