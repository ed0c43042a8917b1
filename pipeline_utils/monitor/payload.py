"""Payload logging: the request and response of each scoring call of a deployment, size-capped, no secrets.

Records go to the ``monitor_payload_log`` table of the state database. Values under keys that look like
secrets (password, token, api key, secret, credential, authorization, cookie, private key) are replaced by
``"***"``; strings longer than ``MAX_STRING_CHARS`` (e.g. serialized images) are replaced by a marker with
their length and SHA-256; a record whose JSON still exceeds ``MAX_RECORD_BYTES`` keeps only its top-level
keys. Each deployment keeps at most ``MAX_RECORDS`` records, oldest dropped first.

``secrets`` (the deployment's custom-arg values) are masked wherever they occur: inside strings and keys,
and in numbers whose text contains one; a record whose JSON text would still contain one (only possible for
values made of JSON punctuation) is stored as ``"***"``. :func:`log_payloads` writes many records in one
transaction (the runtime's background writer uses it); :func:`decode_body` turns a raw HTTP body into what
is stored, parsing JSON only below ``MAX_PARSE_BYTES`` and ``MAX_DEPTH`` levels of nesting (other bodies are
kept as size and SHA-256). A value that still cannot be encoded is stored as a marker, so one odd record
never sinks the others written with it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Any

from pipeline_utils.jsondepth import MAX_DEPTH, too_deep
from pipeline_utils.store import connect, register_schema, transaction
from pipeline_utils.timeutil import from_epoch

MAX_STRING_CHARS = 1024
MAX_RECORD_BYTES = 16 * 1024
MAX_RECORDS = 100_000
MAX_PARSE_BYTES = 256 * 1024
MASK = "***"
_PLAIN = frozenset({int, float, bool, type(None)})
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
        if all(type(v) in _PLAIN for v in value):  # fast path: rows of numbers
            return list(value)
        return [redact(v, max_chars=max_chars) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes sha256={hashlib.sha256(value).hexdigest()[:16]}>"
    if isinstance(value, str) and len(value) > max_chars:
        digest = hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:16]
        return f"<{len(value)} chars sha256={digest}>"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return redact(str(value), max_chars=max_chars)


def mask_secrets(value: Any, secrets: Sequence[str]) -> Any:
    """A copy of ``value`` with every occurrence of each of ``secrets`` in strings, keys and numbers masked."""
    if not secrets:
        return value
    if isinstance(value, dict):
        return {_mask_text(str(k), secrets): mask_secrets(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_secrets(v, secrets) for v in value]
    if isinstance(value, str):
        return _mask_text(value, secrets)
    if value is None or isinstance(value, (bool, int, float)):
        text = json.dumps(value)
        return MASK if any(s in text for s in secrets) else value
    return _mask_text(str(value), secrets)


def _mask_text(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _clean_secrets(secrets: Iterable[str] | None) -> tuple[str, ...]:
    """Non-empty values, longest first (so a value containing another is masked whole)."""
    return tuple(sorted({str(s) for s in secrets or () if str(s)}, key=len, reverse=True))


def _leaks(text: str, secrets: Sequence[str]) -> bool:
    return any(s in text or json.dumps(s)[1:-1] in text for s in secrets)


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _capped_json(value: Any, secrets: Sequence[str] = ()) -> str:
    safe = mask_secrets(redact(value), secrets) if value is not None else None
    try:
        text = json.dumps(safe, default=str, allow_nan=False) if safe is not None else "null"
    except ValueError:  # NaN or infinity (Python's json.loads accepts them): stored as strings
        safe = mask_secrets(_finite(safe), secrets)
        text = json.dumps(safe, default=str, allow_nan=False)
    if len(text.encode("utf-8")) > MAX_RECORD_BYTES:
        keys = sorted(safe) if isinstance(safe, dict) else []
        text = json.dumps(mask_secrets({"_truncated": True, "_bytes": len(text), "_keys": keys[:100]}, secrets))
    if secrets and _leaks(text, secrets):
        return json.dumps(MASK)
    return text


def _stored_json(value: Any, secrets: Sequence[str]) -> str:
    """``_capped_json``, or a marker when ``value`` cannot be encoded (nested too deep, circular)."""
    try:
        return _capped_json(value, secrets)
    except (RecursionError, ValueError, TypeError) as exc:
        return json.dumps({"_truncated": True, "_reason": f"not encodable ({type(exc).__name__})"})


def _body_marker(raw: bytes, reason: str) -> dict[str, Any]:
    """What is stored instead of a body that is not parsed: its size and SHA-256, and why."""
    return {"_truncated": True, "_bytes": len(raw), "_sha256": hashlib.sha256(raw).hexdigest(), "_reason": reason}


def decode_body(body: bytes | str | None) -> Any:
    """What is stored of a raw request or response body: its JSON value, else its text.

    Bodies above ``MAX_PARSE_BYTES`` (parsing holds the GIL) and JSON nested deeper than ``MAX_DEPTH``
    (it exhausts the stack) are not parsed: they are stored as ``{"_truncated": true, "_bytes": n,
    "_sha256": ..., "_reason": ...}``.
    """
    if body is None:
        return None
    raw = body.encode("utf-8", "replace") if isinstance(body, str) else bytes(body)
    if len(raw) > MAX_PARSE_BYTES:
        return _body_marker(raw, f"above {MAX_PARSE_BYTES} bytes")
    deep = f"JSON nested deeper than {MAX_DEPTH} levels"
    if too_deep(raw):
        return _body_marker(raw, deep)
    try:
        return json.loads(raw)
    except RecursionError:
        return _body_marker(raw, deep)
    except (ValueError, UnicodeDecodeError):
        return raw.decode("utf-8", "replace")


_INSERT = (
    "INSERT INTO monitor_payload_log (deployment, logged_at, status, elapsed_ms, request_json, response_json)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


def log_payload(
    deployment: str,
    request: Any,
    response: Any,
    *,
    status: str | None = None,
    elapsed_ms: float | None = None,
    secrets: Iterable[str] | None = None,
    conn: sqlite3.Connection | None = None,
) -> None:
    """Append one scoring call of ``deployment`` to its payload log (redacted, size-capped, ``secrets`` masked)."""
    log_payloads(
        [
            {
                "deployment": deployment,
                "request": request,
                "response": response,
                "status": status,
                "elapsed_ms": elapsed_ms,
                "secrets": secrets,
            }
        ],
        conn=conn,
    )


def log_payloads(records: Iterable[dict[str, Any]], *, conn: sqlite3.Connection | None = None) -> int:
    """Append many scoring calls in one transaction; returns how many were written.

    Each record is a dict with ``deployment``, ``request``, ``response`` and optionally ``status``,
    ``elapsed_ms``, ``logged_at`` (UNIX time, default now) and ``secrets`` (values to mask).
    """
    now = time.time()
    rows = []
    for record in records:
        secrets = _clean_secrets(record.get("secrets"))
        status = record.get("status")
        rows.append(
            (
                str(record["deployment"]),
                float(record.get("logged_at") or now),
                None if status is None else str(status),
                record.get("elapsed_ms"),
                _stored_json(record.get("request"), secrets),
                _stored_json(record.get("response"), secrets),
            )
        )
    if not rows:
        return 0
    own = conn is None
    conn = conn or connect()
    try:
        with transaction(conn):
            before = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM monitor_payload_log").fetchone()[0]
            conn.executemany(_INSERT, rows)
            if (before + len(rows)) // 1000 != before // 1000:
                for deployment in {row[0] for row in rows}:
                    _prune(conn, deployment)
    finally:
        if own:
            conn.close()
    return len(rows)


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
            "logged_at": from_epoch(r["logged_at"]),
            "status": r["status"],
            "elapsed_ms": r["elapsed_ms"],
            "request": json.loads(r["request_json"]),
            "response": json.loads(r["response_json"]),
        }
        for r in rows
    ]
