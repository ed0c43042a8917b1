"""The local monitor service: subscriptions, monitor instances and evaluation runs in the state database."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from pipeline_utils.config.settings import mlops_home
from pipeline_utils.errors import BadInput, Conflict, NotFound
from pipeline_utils.monitor.model import Measurement, MonitorInstance, MonitorStatus, Run
from pipeline_utils.monitor.service import MonitorService
from pipeline_utils.store import connect, register_schema, transaction
from pipeline_utils.timeutil import now_iso

register_schema(
    "monitor",
    """
    CREATE TABLE IF NOT EXISTS monitor_subscriptions (
        subscription_id TEXT PRIMARY KEY,
        deployment TEXT NOT NULL UNIQUE,
        model_asset_id TEXT,
        created_at TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS monitor_instances (
        subscription_id TEXT NOT NULL REFERENCES monitor_subscriptions (subscription_id) ON DELETE CASCADE,
        monitor_id TEXT NOT NULL,
        definition TEXT NOT NULL,
        config_json TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (subscription_id, monitor_id)
    );
    CREATE TABLE IF NOT EXISTS monitor_runs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL UNIQUE,
        subscription_id TEXT NOT NULL,
        monitor_id TEXT NOT NULL,
        definition TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT,
        issues INTEGER NOT NULL,
        measurements_json TEXT NOT NULL,
        problems_json TEXT NOT NULL,
        FOREIGN KEY (subscription_id, monitor_id)
            REFERENCES monitor_instances (subscription_id, monitor_id) ON DELETE CASCADE
    );
    CREATE INDEX IF NOT EXISTS monitor_runs_latest ON monitor_runs (subscription_id, monitor_id, seq);
    """,
)

_RUN_COLUMNS = (
    "run_id, subscription_id, monitor_id, definition, started_at, finished_at, state, reason, issues,"
    " measurements_json, problems_json"
)


def _run_from_row(row: sqlite3.Row, deployment: str) -> Run:
    return Run(
        run_id=row["run_id"],
        deployment=deployment,
        subscription_id=row["subscription_id"],
        monitor_id=row["monitor_id"],
        definition=row["definition"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        state=row["state"],
        reason=row["reason"],
        measurements=[Measurement(**m) for m in json.loads(row["measurements_json"])],
        problems=json.loads(row["problems_json"]),
    )


def _run_row(run: Run) -> tuple:
    return (
        run.run_id,
        run.subscription_id,
        run.monitor_id,
        run.definition,
        run.started_at,
        run.finished_at,
        run.state,
        run.reason,
        run.issues,
        json.dumps([m.__dict__ for m in run.measurements], allow_nan=False),
        json.dumps(run.problems),
    )


class LocalMonitorService(MonitorService):
    """The monitor service of the local backend, on ``home``'s SQLite state database; evaluates in-process."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> LocalMonitorService:
        """The monitor service of ``$MLOPS_HOME`` (default ``~/.mlops``)."""
        return cls(mlops_home(environ))

    def diagnose(self) -> str:
        """Where monitors are stored and how many there are."""
        return f"monitors in {self.home}: {len(self.list_monitors())} configured"

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        conn = connect(self.home)
        try:
            yield conn
        finally:
            conn.close()

    def create_subscription(self, deployment: str, model_asset_id: str | None = None) -> str:
        """Subscribe ``deployment`` (idempotent: the existing subscription is kept, with ``model_asset_id``)."""
        if not isinstance(deployment, str) or not deployment.strip():
            raise BadInput(f"deployment name must be a non-empty string, got {deployment!r}", field="name")
        with self._db() as conn, transaction(conn):
            row = conn.execute(
                "SELECT subscription_id FROM monitor_subscriptions WHERE deployment = ?", (deployment,)
            ).fetchone()
            if row:
                if model_asset_id:
                    conn.execute(
                        "UPDATE monitor_subscriptions SET model_asset_id = ? WHERE subscription_id = ?",
                        (model_asset_id, row[0]),
                    )
                return row[0]
            subscription_id = str(uuid.uuid4())
            conn.execute(
                "INSERT INTO monitor_subscriptions VALUES (?, ?, ?, ?)",
                (subscription_id, deployment, model_asset_id, now_iso()),
            )
            return subscription_id

    def subscription_id(self, deployment: str) -> str | None:
        """The subscription id of ``deployment``, or None when it has none."""
        with self._db() as conn:
            row = conn.execute(
                "SELECT subscription_id FROM monitor_subscriptions WHERE deployment = ?", (deployment,)
            ).fetchone()
        return row[0] if row else None

    def _require_subscription(self, deployment: str) -> str:
        subscription_id = self.subscription_id(deployment)
        if subscription_id is None:
            raise NotFound(f"deployment {deployment!r} has no monitors (run `monitor create` first)", field="name")
        return subscription_id

    def create_monitors(self, deployment: str, provider: dict, *, replace: bool = False) -> list[MonitorInstance]:
        """Create the monitors of ``provider`` (``replace``: make them exactly these, keeping runs); all or nothing."""
        from pipeline_utils.monitor.checks import check_monitor

        if not isinstance(provider, dict) or not provider:
            raise BadInput("no monitors configured (expected monitor id -> config)",
                           field="openscale_custom_metric_provider")
        checked = {monitor_id: check_monitor(monitor_id, raw) for monitor_id, raw in provider.items()}
        subscription_id = self._require_subscription(deployment)
        created = now_iso()
        with self._db() as conn, transaction(conn):
            existing = {
                r[0]: r[1]
                for r in conn.execute(
                    "SELECT monitor_id, created_at FROM monitor_instances WHERE subscription_id = ?",
                    (subscription_id,),
                )
            }
            clash = sorted(set(existing) & set(checked))
            if clash and not replace:
                raise Conflict(
                    f"monitor already configured for deployment {deployment!r} (subscription {subscription_id});"
                    f" delete it first with `monitor delete --name {deployment}`",
                    field=f"openscale_custom_metric_provider.{clash[0]}",
                )
            instances = [
                MonitorInstance(
                    deployment,
                    subscription_id,
                    monitor_id,
                    c.definition.name,
                    existing.get(monitor_id, created),
                    dict(provider[monitor_id]),
                )
                for monitor_id, c in checked.items()
            ]
            gone = sorted(set(existing) - set(checked)) if replace else []
            for table in ("monitor_runs", "monitor_instances"):
                conn.executemany(
                    f"DELETE FROM {table} WHERE subscription_id = ? AND monitor_id = ?",
                    [(subscription_id, monitor_id) for monitor_id in gone],
                )
            conn.executemany(
                "INSERT INTO monitor_instances VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (subscription_id, monitor_id)"
                " DO UPDATE SET definition = excluded.definition, config_json = excluded.config_json",
                [
                    (i.subscription_id, i.monitor_id, i.definition, json.dumps(i.config), i.created_at)
                    for i in instances
                ],
            )
        return instances

    def list_monitors(self, deployment: str | None = None) -> list[MonitorInstance]:
        """The configured monitors, of one deployment or of all."""
        query = "SELECT s.deployment, i.* FROM monitor_instances i JOIN monitor_subscriptions s USING (subscription_id)"
        args: tuple = ()
        if deployment is not None:
            query += " WHERE s.deployment = ?"
            args = (deployment,)
        with self._db() as conn:
            rows = conn.execute(query + " ORDER BY s.deployment, i.monitor_id", args).fetchall()
        return [
            MonitorInstance(
                r["deployment"],
                r["subscription_id"],
                r["monitor_id"],
                r["definition"],
                r["created_at"],
                json.loads(r["config_json"]),
            )
            for r in rows
        ]

    def _instances(self, deployment: str, monitor_id: str | None) -> list[MonitorInstance]:
        self._require_subscription(deployment)
        instances = [i for i in self.list_monitors(deployment) if monitor_id in (None, i.monitor_id)]
        if monitor_id is not None and not instances:
            raise NotFound(f"deployment {deployment!r} has no monitor {monitor_id!r}", field="monitor")
        return instances

    def run(self, deployment: str, monitor_id: str | None = None) -> list[Run]:
        """Evaluate the deployment's monitors (or one) now, in this process, and store the runs together."""
        instances = self._instances(deployment, monitor_id)
        runs = [self.evaluate(deployment, i.subscription_id, i) for i in instances]
        self.store_runs(runs)
        return runs

    def store_run(self, run: Run) -> None:
        """Store one evaluation run (its monitor must exist)."""
        self.store_runs([run])

    def store_runs(self, runs: list[Run]) -> None:
        """Store evaluation runs in one transaction (their monitors must exist)."""
        with self._db() as conn, transaction(conn):
            conn.executemany(
                f"INSERT INTO monitor_runs ({_RUN_COLUMNS}) VALUES ({', '.join('?' * 11)})", [_run_row(r) for r in runs]
            )

    def status(self, deployment: str) -> list[MonitorStatus]:
        """Each monitor of ``deployment`` with its latest run."""
        instances = self._instances(deployment, None)
        result = []
        with self._db() as conn:
            for instance in instances:
                row = conn.execute(
                    f"SELECT {_RUN_COLUMNS} FROM monitor_runs WHERE subscription_id = ? AND monitor_id = ?"
                    " ORDER BY seq DESC LIMIT 1",
                    (instance.subscription_id, instance.monitor_id),
                ).fetchone()
                result.append(MonitorStatus(instance, _run_from_row(row, deployment) if row else None))
        return result

    def history(self, deployment: str, monitor_id: str | None = None, limit: int | None = None) -> list[Run]:
        """Stored runs, oldest first (the last ``limit`` per monitor when given)."""
        runs: list[Run] = []
        with self._db() as conn:
            for instance in self._instances(deployment, monitor_id):
                rows = conn.execute(
                    f"SELECT {_RUN_COLUMNS} FROM monitor_runs WHERE subscription_id = ? AND monitor_id = ?"
                    " ORDER BY seq DESC LIMIT ?",
                    (instance.subscription_id, instance.monitor_id, -1 if limit is None else limit),
                ).fetchall()
                runs.extend(_run_from_row(r, deployment) for r in reversed(rows))
        return runs

    def delete(self, deployment: str, monitor_id: str | None = None) -> list[str]:
        """Delete the deployment's monitors (or one) with their runs; without ``monitor_id`` also the subscription."""
        instances = self._instances(deployment, monitor_id)
        subscription_id = instances[0].subscription_id if instances else self._require_subscription(deployment)
        with self._db() as conn, transaction(conn):
            conn.execute(
                "DELETE FROM monitor_runs WHERE subscription_id = ? AND (? IS NULL OR monitor_id = ?)",
                (subscription_id, monitor_id, monitor_id),
            )
            conn.execute(
                "DELETE FROM monitor_instances WHERE subscription_id = ? AND (? IS NULL OR monitor_id = ?)",
                (subscription_id, monitor_id, monitor_id),
            )
            if monitor_id is None:
                conn.execute("DELETE FROM monitor_subscriptions WHERE subscription_id = ?", (subscription_id,))
        return [i.monitor_id for i in instances]
