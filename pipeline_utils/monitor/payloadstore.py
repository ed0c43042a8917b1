"""Where payload records are kept: one row of the state database per batch of a deployment's records.

A row of ``monitor_payload_batches`` holds a batch of one deployment's records, column by column: a JSON array of
five arrays, ``[logged_at...]``, ``[status...]``, ``[elapsed_ms...]``, ``[request...]`` and ``[response...]``
(request and response are the stored JSON values :mod:`payload` prepared), with the batch's record count and its
earliest and latest ``logged_at``. One row per batch, not per record, because the runtime's writer process takes
its CPU from serving: a row per record cost about 14 µs of SQLite work per record (its B-tree entry in the table
and two indexes, then the pruning delete), a row per batch about 2 µs (``python bench/bench_payload_records.py``).
Columns, not an array per record, so that a batch is built without a Python step per record: the bodies' JSON
arrives from the runtime's daemon already joined by commas, and msgspec encodes the other columns (about 20 times
faster than formatting each float with ``%r``). A status is stored as given (the runtime's are numbers) and read
back as text. Counting reads the count column
and decodes only the batches that straddle the time asked about; reading decodes whole batches.

Each deployment keeps the latest ``MAX_RECORDS`` records in whole batches: once it holds ``PRUNE_EVERY`` more, its
oldest batches are deleted down to (at least) ``MAX_RECORDS``. A process looks (a sum over the deployment's batches)
after its first append of a deployment and then once it has appended another ``PRUNE_EVERY // 2`` records of it, so
each process appending adds at most that much to the bound. Records written by an earlier version, one row each in
``monitor_payload_log``, are moved into batches (in their order, in one transaction) the first time a process opens
the database.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from pipeline_utils.store import connect, register_schema, transaction
from pipeline_utils.timeutil import from_epoch

MAX_RECORDS = 100_000
PRUNE_EVERY = 10_000
MIGRATE_BATCH = 200
OLD_TABLE = "monitor_payload_log"

register_schema(
    "monitor_payload",
    """
    CREATE TABLE IF NOT EXISTS monitor_payload_batches (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        deployment TEXT NOT NULL,
        first_at REAL NOT NULL,
        last_at REAL NOT NULL,
        records INTEGER NOT NULL,
        body BLOB NOT NULL
    );
    CREATE INDEX IF NOT EXISTS monitor_payload_batches_by_deployment
        ON monitor_payload_batches (deployment, seq, records, first_at, last_at);
    """,
)

Batch = tuple[str, float, float, int, str]
"""One row as :func:`append_batches` takes it: deployment, first and last ``logged_at``, record count, JSON text."""


_COLUMNS = b"[%s,%s,%s,[%s],[%s]]"


@lru_cache(maxsize=1)
def _msgspec() -> tuple[Any, Any, type[Exception]]:
    """msgspec's JSON encoder (non-finite floats become null) and decoder, and its error; imported on first use, so
    that importing the monitor package needs only the standard library (a Ray replica imports it)."""
    import msgspec

    return msgspec.json.Encoder().encode, msgspec.json.Decoder().decode, msgspec.DecodeError


def _encode(value: Any) -> bytes:
    return _msgspec()[0](value)


def _decode(body: bytes | str) -> Any:
    """A stored batch's JSON: by msgspec (about twice as fast as json.loads on a batch), or by the json module
    for a number msgspec refuses (one that overflows a float: the writers never store one, an older file might)."""
    _, decode, decode_error = _msgspec()
    try:
        return decode(body)
    except decode_error:
        return json.loads(body)


_migrated: set[str] = set()
_appended: dict[tuple[str, str], int] = {}  # (database, deployment) -> records this process appended unchecked


def batch_row(
    deployment: str,
    logged_at: Sequence[float],
    statuses: Sequence[Any],
    elapsed_ms: Sequence[Any],
    requests: bytes,
    responses: bytes,
) -> Batch:
    """The row that stores one deployment's records, given column by column: UNIX times (one that is not a finite
    number is taken as now), statuses (numbers, text or None), latencies (anything but a finite number is stored as
    null), and the stored JSON values of the requests and of the responses, each column's joined by commas.

    Without a Python step per record: the payload writer calls this per batch.
    """
    now = time.time()
    if not all(map(math.isfinite, logged_at)):
        logged_at = [value if math.isfinite(value) else now for value in logged_at]
    if not set(map(type, elapsed_ms)) <= {float, int, type(None)}:
        elapsed_ms = [value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
                      for value in elapsed_ms]
    if not set(map(type, statuses)) <= {int, str, type(None)}:
        statuses = [None if value is None else str(value) for value in statuses]
    text = _COLUMNS % (_encode(list(map(float, logged_at))), _encode(list(statuses)), _encode(list(elapsed_ms)),
                       requests, responses)
    return (deployment, float(min(logged_at, default=now)), float(max(logged_at, default=now)), len(logged_at), text)


def records_of(body: bytes | str) -> list[tuple[float, str | None, float | None, Any, Any]]:
    """A stored batch's records, oldest first: (logged_at, status as text, elapsed_ms, request, response)."""
    logged_at, statuses, elapsed_ms, requests, responses = _decode(body)
    statuses = [None if status is None else str(status) for status in statuses]
    return list(zip(logged_at, statuses, elapsed_ms, requests, responses, strict=True))


def append_batches(batches: Iterable[Batch], *, conn: sqlite3.Connection | None = None) -> int:
    """Store batches (see :data:`Batch`) in one transaction, then prune; returns how many records they hold."""
    rows = [batch for batch in batches if batch[3]]
    if not rows:
        return 0
    own = conn is None
    conn = conn or connect()
    try:
        database = _migrate(conn)
        appended: dict[str, int] = {}
        for row in rows:
            appended[row[0]] = appended.get(row[0], 0) + row[3]
        due = [deployment for deployment, count in appended.items()
               if _appended.get((database, deployment), PRUNE_EVERY) + count >= PRUNE_EVERY // 2]
        with transaction(conn):
            conn.executemany(
                "INSERT INTO monitor_payload_batches (deployment, first_at, last_at, records, body)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            for deployment in due:
                _prune(conn, deployment)
        for deployment, count in appended.items():
            _appended[database, deployment] = 0 if deployment in due else _appended[database, deployment] + count
    finally:
        if own:
            conn.close()
    return sum(row[3] for row in rows)


def _prune(conn: sqlite3.Connection, deployment: str) -> None:
    """Delete ``deployment``'s oldest batches once it holds ``PRUNE_EVERY`` records more than ``MAX_RECORDS``."""
    (total,) = conn.execute(
        "SELECT COALESCE(SUM(records), 0) FROM monitor_payload_batches WHERE deployment = ?", (deployment,)
    ).fetchone()
    if total <= MAX_RECORDS + PRUNE_EVERY:
        return
    conn.execute(
        "DELETE FROM monitor_payload_batches WHERE deployment = ?1 AND seq <= (SELECT MAX(seq) FROM"
        " (SELECT seq, SUM(records) OVER (ORDER BY seq DESC) - records AS newer FROM monitor_payload_batches"
        " WHERE deployment = ?1) WHERE newer >= ?2)",
        (deployment, MAX_RECORDS),
    )


def payload_count(deployment: str, since: float | None = None, conn: sqlite3.Connection | None = None) -> int:
    """How many scoring calls of ``deployment`` are logged (since the UNIX time ``since``, if given)."""
    own = conn is None
    conn = conn or connect()
    try:
        _migrate(conn)
        if since is None:
            since = -math.inf
        (whole,) = conn.execute(
            "SELECT COALESCE(SUM(records), 0) FROM monitor_payload_batches WHERE deployment = ? AND first_at >= ?",
            (deployment, since),
        ).fetchone()
        straddling = conn.execute(
            "SELECT body FROM monitor_payload_batches WHERE deployment = ?1 AND first_at < ?2 AND last_at >= ?2",
            (deployment, since),
        ).fetchall()
        return int(whole) + sum(1 for (body,) in straddling for logged_at in _decode(body)[0] if logged_at >= since)
    finally:
        if own:
            conn.close()


def payload_records(deployment: str, limit: int = 100) -> list[dict[str, Any]]:
    """The latest ``limit`` logged calls of ``deployment``, newest first."""
    records: list[list[Any]] = []
    conn = connect()
    try:
        _migrate(conn)
        cursor = conn.execute(
            "SELECT body FROM monitor_payload_batches WHERE deployment = ? ORDER BY seq DESC", (deployment,)
        )
        for (body,) in cursor:
            if len(records) >= limit:
                break
            records.extend(reversed(records_of(body)))
    finally:
        conn.close()
    return [
        {"logged_at": from_epoch(logged_at), "status": status, "elapsed_ms": elapsed_ms, "request": request,
         "response": response}
        for logged_at, status, elapsed_ms, request, response in records[:limit]
    ]


def _migrate(conn: sqlite3.Connection) -> str:
    """Move an earlier version's one-row-per-record table into batches, once per database and process; returns the
    database's path."""
    (_, _, path) = conn.execute("PRAGMA database_list").fetchone()
    if path in _migrated:
        return path
    with transaction(conn):
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (OLD_TABLE,)).fetchone():
            rows = conn.execute(
                f"SELECT deployment, logged_at, status, elapsed_ms, request_json, response_json FROM {OLD_TABLE}"
                " ORDER BY deployment, seq"
            )
            conn.executemany(
                "INSERT INTO monitor_payload_batches (deployment, first_at, last_at, records, body)"
                " VALUES (?, ?, ?, ?, ?)",
                list(_old_batches(rows)),
            )
            conn.execute(f"DROP TABLE {OLD_TABLE}")
    _migrated.add(path)
    return path


def _old_batches(rows: Iterable[sqlite3.Row]) -> Iterable[Batch]:
    """Rows of the old table (ordered by deployment, then seq) as batches of ``MIGRATE_BATCH`` records."""
    deployment, chunk = "", []
    for name, logged_at, status, elapsed_ms, request, response in rows:
        if chunk and (name != deployment or len(chunk) >= MIGRATE_BATCH):
            yield _old_batch(deployment, chunk)
            chunk = []
        deployment = name
        chunk.append((logged_at, status, elapsed_ms, request, response))
    if chunk:
        yield _old_batch(deployment, chunk)


def _old_batch(deployment: str, rows: list[tuple[Any, ...]]) -> Batch:
    logged_at, statuses, elapsed_ms, requests, responses = zip(*rows, strict=True)
    return batch_row(deployment, logged_at, statuses, elapsed_ms, ",".join(requests).encode("utf-8"),
                     ",".join(responses).encode("utf-8"))
