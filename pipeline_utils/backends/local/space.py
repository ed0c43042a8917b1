"""The local deployment space: asset records and the metadata document in SQLite, contents as files.

Asset contents are content-addressed files under ``$MLOPS_HOME/space/blobs``, written
completely before the row that makes them visible is committed, so a crash mid-stage
leaves no half asset behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from pipeline_utils.config.settings import mlops_home
from pipeline_utils.errors import PipelineError
from pipeline_utils.space.base import Asset, AssetVersion, Space
from pipeline_utils.store import connect, register_schema, transaction

register_schema(
    "space",
    """
    CREATE TABLE IF NOT EXISTS space_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS assets (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, asset_type TEXT NOT NULL,
        version INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS assets_by_name ON assets (name);
    CREATE TABLE IF NOT EXISTS asset_versions (
        asset_id TEXT NOT NULL REFERENCES assets (id) ON DELETE CASCADE, version INTEGER NOT NULL,
        size INTEGER NOT NULL, sha256 TEXT NOT NULL, created_at TEXT NOT NULL,
        PRIMARY KEY (asset_id, version));
    CREATE TABLE IF NOT EXISTS metadata_entries (
        model_asset_id TEXT PRIMARY KEY, entry TEXT NOT NULL, updated_at TEXT NOT NULL);
    """,
)

_CHUNK = 1 << 20


def now_iso() -> str:
    """The current UTC time, ISO 8601 with microseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class LocalSpace(Space):
    """A deployment space on this machine, under ``$MLOPS_HOME/space``."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = home or mlops_home()
        self.root = self.home / "space"
        self.blobs = self.root / "blobs"
        self.tmp = self.root / "tmp"
        for folder in (self.blobs, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)
        self.conn = connect(self.home)
        self.space_id = self._space_id()

    def _space_id(self) -> str:
        row = self.conn.execute("SELECT value FROM space_settings WHERE key = 'space_id'").fetchone()
        if row:
            return row["value"]
        with transaction(self.conn):
            self.conn.execute(
                "INSERT OR IGNORE INTO space_settings (key, value) VALUES ('space_id', ?)", (str(uuid.uuid4()),)
            )
        return self.conn.execute("SELECT value FROM space_settings WHERE key = 'space_id'").fetchone()["value"]

    def scratch_path(self, name: str) -> Path:
        """A fresh path in the space's scratch folder (same filesystem as the blobs: renames are cheap)."""
        return self.tmp / f"{uuid.uuid4().hex}-{name}"

    def _blob_path(self, sha256: str) -> Path:
        return self.blobs / sha256[:2] / sha256

    def _asset(self, row, with_versions: bool = False) -> Asset:
        versions = self.conn.execute(
            "SELECT version, size, sha256, created_at FROM asset_versions WHERE asset_id = ? ORDER BY version",
            (row["id"],),
        ).fetchall()
        history = tuple(AssetVersion(**dict(v)) for v in versions)
        latest = history[-1]
        return Asset(
            id=row["id"],
            name=row["name"],
            asset_type=row["asset_type"],
            size=latest.size,
            sha256=latest.sha256,
            version=row["version"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            versions=history if with_versions else (),
        )

    def list_assets(self) -> list[Asset]:
        rows = self.conn.execute("SELECT * FROM assets ORDER BY created_at, rowid").fetchall()
        return [self._asset(row) for row in rows]

    def assets_named(self, name: str) -> list[Asset]:
        rows = self.conn.execute("SELECT * FROM assets WHERE name = ? ORDER BY created_at", (name,)).fetchall()
        return [self._asset(row) for row in rows]

    def get_asset(self, id_or_name: str) -> Asset:
        row = self.conn.execute("SELECT * FROM assets WHERE id = ?", (id_or_name,)).fetchone()
        if row:
            return self._asset(row, with_versions=True)
        rows = self.conn.execute("SELECT * FROM assets WHERE name = ?", (id_or_name,)).fetchall()
        if not rows:
            raise PipelineError(f"no asset with id or name {id_or_name!r} in the space")
        if len(rows) > 1:
            ids = ", ".join(r["id"] for r in rows)
            raise PipelineError(f"{len(rows)} assets are named {id_or_name!r}; name one by id ({ids})")
        return self._asset(rows[0], with_versions=True)

    def _store_blob(self, source: Path) -> tuple[str, int]:
        """Move (if scratch) or copy the file into the blob store; returns (sha256, size)."""
        sha256 = file_sha256(source)
        size = source.stat().st_size
        target = self._blob_path(sha256)
        if target.exists():
            if source.parent == self.tmp:
                source.unlink()
            return sha256, size
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.parent == self.tmp:
            os.replace(source, target)
        else:
            staging = self.scratch_path(source.name)
            shutil.copyfile(source, staging)
            os.replace(staging, target)
        return sha256, size

    def add_asset(self, source: Path, name: str, asset_type: str, *, replace_id: str | None = None) -> Asset:
        source = Path(source)
        if not source.is_file():
            raise PipelineError(f"{source}: not a file")
        sha256, size = self._store_blob(source)
        stamp = now_iso()
        with transaction(self.conn):
            if replace_id is None:
                asset_id = str(uuid.uuid4())
                version = 1
                self.conn.execute(
                    "INSERT INTO assets (id, name, asset_type, version, created_at, updated_at)"
                    " VALUES (?, ?, ?, 1, ?, ?)",
                    (asset_id, name, asset_type, stamp, stamp),
                )
            else:
                row = self.conn.execute("SELECT version FROM assets WHERE id = ?", (replace_id,)).fetchone()
                if row is None:
                    raise PipelineError(f"no asset with id {replace_id!r} to overwrite")
                asset_id, version = replace_id, row["version"] + 1
                self.conn.execute(
                    "UPDATE assets SET version = ?, updated_at = ? WHERE id = ?", (version, stamp, asset_id)
                )
            self.conn.execute(
                "INSERT INTO asset_versions (asset_id, version, size, sha256, created_at) VALUES (?, ?, ?, ?, ?)",
                (asset_id, version, size, sha256, stamp),
            )
        return self.get_asset(asset_id)

    def download_asset(self, id_or_name: str, dest: Path, *, version: int | None = None) -> Path:
        asset = self.get_asset(id_or_name)
        chosen = next((v for v in asset.versions if v.version == (version or asset.version)), None)
        if chosen is None:
            raise PipelineError(f"--version: asset {asset.name!r} has no version {version}")
        dest = Path(dest)
        target = dest / asset.name if dest.is_dir() else dest
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        shutil.copyfile(self._blob_path(chosen.sha256), partial)
        os.replace(partial, target)
        return target

    def delete_asset(self, id_or_name: str) -> Asset:
        asset = self.get_asset(id_or_name)
        with transaction(self.conn):
            self.conn.execute("DELETE FROM assets WHERE id = ?", (asset.id,))
        for blob in {v.sha256 for v in asset.versions}:
            still_used = self.conn.execute("SELECT 1 FROM asset_versions WHERE sha256 = ?", (blob,)).fetchone()
            if not still_used:
                self._blob_path(blob).unlink(missing_ok=True)
        return asset

    def metadata(self) -> dict[str, dict]:
        rows = self.conn.execute("SELECT model_asset_id, entry FROM metadata_entries ORDER BY rowid").fetchall()
        return {row["model_asset_id"]: json.loads(row["entry"]) for row in rows}

    def put_entries(self, entries: dict[str, dict], *, overwrite: bool = False) -> None:
        stamp = now_iso()
        with transaction(self.conn):
            if not overwrite:
                marks = ",".join("?" * len(entries))
                taken = self.conn.execute(
                    f"SELECT model_asset_id FROM metadata_entries WHERE model_asset_id IN ({marks})",
                    tuple(entries),
                ).fetchall()
                if taken:
                    raise PipelineError(
                        f"metadata entry {taken[0]['model_asset_id']!r} already exists; use -f to overwrite"
                    )
            self.conn.executemany(
                "INSERT INTO metadata_entries (model_asset_id, entry, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (model_asset_id) DO UPDATE SET entry = excluded.entry, updated_at = excluded.updated_at",
                [(key, json.dumps(entry), stamp) for key, entry in entries.items()],
            )

    def update_entry(self, model_asset_id: str, change: Callable[[dict], dict]) -> dict:
        with transaction(self.conn):
            row = self.conn.execute(
                "SELECT entry FROM metadata_entries WHERE model_asset_id = ?", (model_asset_id,)
            ).fetchone()
            if row is None:
                raise PipelineError(f"no metadata entry for model asset id {model_asset_id!r}")
            entry = change(json.loads(row["entry"]))
            self.conn.execute(
                "UPDATE metadata_entries SET entry = ?, updated_at = ? WHERE model_asset_id = ?",
                (json.dumps(entry), now_iso(), model_asset_id),
            )
        return entry

    def delete_entry(self, model_asset_id: str) -> dict:
        with transaction(self.conn):
            row = self.conn.execute(
                "SELECT entry FROM metadata_entries WHERE model_asset_id = ?", (model_asset_id,)
            ).fetchone()
            if row is None:
                raise PipelineError(f"--model-asset-id: unknown model asset id {model_asset_id!r}")
            self.conn.execute("DELETE FROM metadata_entries WHERE model_asset_id = ?", (model_asset_id,))
        return json.loads(row["entry"])
