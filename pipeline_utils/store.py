"""The local state database: one SQLite file under the state directory, shared by all concerns.

Each concern registers its own tables with :func:`register_schema`; every connection
creates the registered tables on first use. Writers use ``BEGIN IMMEDIATE`` transactions
so concurrent processes serialize instead of losing updates.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from pipeline_utils.config.settings import mlops_home

DB_NAME = "mlops.db"
_SCHEMAS: dict[str, str] = {}


def register_schema(name: str, ddl: str) -> None:
    """Register ``CREATE TABLE IF NOT EXISTS ...`` statements to run on every new connection."""
    _SCHEMAS[name] = ddl


def db_path(home: Path | None = None) -> Path:
    """The path of the state database."""
    return (home or mlops_home()) / DB_NAME


def connect(home: Path | None = None) -> sqlite3.Connection:
    """Open the state database with WAL journaling, a generous busy timeout and all schemas."""
    conn = sqlite3.connect(db_path(home), timeout=60.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 60000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    for ddl in _SCHEMAS.values():
        conn.executescript(ddl)
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction taken up front (``BEGIN IMMEDIATE``): all or nothing, no lost updates."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
