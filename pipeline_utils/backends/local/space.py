"""The local deployment space: asset records and the metadata document in SQLite, contents as files.

Asset contents are content-addressed files under ``<home>/space/blobs``, written
completely before the row that makes them visible is committed, so a crash mid-stage
leaves no half asset behind. Scratch files carry their writer's pid, so that those of a
killed process are removed when the space is next opened.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from pipeline_utils.config.settings import mlops_home
from pipeline_utils.errors import BadInput, Conflict, NotFound, Unavailable
from pipeline_utils.space.base import FILE, Asset, AssetVersion, Space, name_clash
from pipeline_utils.store import connect, register_schema, transaction
from pipeline_utils.timeutil import now_iso

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
        size INTEGER NOT NULL, sha256 TEXT NOT NULL, created_at TEXT NOT NULL, kind TEXT,
        PRIMARY KEY (asset_id, version));
    CREATE TABLE IF NOT EXISTS metadata_entries (
        model_asset_id TEXT PRIMARY KEY, entry TEXT NOT NULL, updated_at TEXT NOT NULL);
    """,
)

_CHUNK = 1 << 20
_SCRATCH = re.compile(r"^(\d+)-[0-9a-f]{32}-")
_FOREIGN_SCRATCH_AGE = 24 * 3600


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def copy_verified(source: Path, target: Path, sha256: str) -> None:
    """Copy ``source`` to ``target`` while hashing it; on a sha256 mismatch remove ``target`` and raise."""
    digest = hashlib.sha256()
    try:
        with open(source, "rb") as reader, open(target, "wb") as writer:
            while chunk := reader.read(_CHUNK):
                digest.update(chunk)
                writer.write(chunk)
    except FileNotFoundError:
        target.unlink(missing_ok=True)
        raise Unavailable(f"stored content {source.name} is missing from the space") from None
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    if digest.hexdigest() != sha256:
        target.unlink(missing_ok=True)
        raise Unavailable(f"stored content {source.name} does not match its sha256 (corrupted); nothing was copied")


def _process_alive(pid: int) -> bool:
    import psutil

    return psutil.pid_exists(pid)


class LocalSpace(Space):
    """A deployment space on this machine, under ``<home>/space`` with its records in ``home``'s database."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.root = self.home / "space"
        self.blobs = self.root / "blobs"
        self.tmp = self.root / "tmp"
        for folder in (self.blobs, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)
        self.conn = connect(self.home)
        self._add_kind_column()
        self.space_id = self._space_id()
        self._remove_stale_scratch()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> LocalSpace:
        """The space of ``$MLOPS_HOME`` (default ``~/.mlops``)."""
        return cls(mlops_home(environ))

    def diagnose(self) -> str:
        """The space's id, store and asset count."""
        return f"space {self.space_id} in {self.root}: {len(self.list_assets())} assets"

    def _add_kind_column(self) -> None:
        """Databases made before asset kinds were recorded get the column (NULL: kind unknown)."""
        columns = {row["name"] for row in self.conn.execute("PRAGMA table_info(asset_versions)")}
        if "kind" not in columns:
            with contextlib.suppress(sqlite3.OperationalError):
                self.conn.execute("ALTER TABLE asset_versions ADD COLUMN kind TEXT")

    def _space_id(self) -> str:
        row = self.conn.execute("SELECT value FROM space_settings WHERE key = 'space_id'").fetchone()
        if row:
            return row["value"]
        with transaction(self.conn):
            self.conn.execute(
                "INSERT OR IGNORE INTO space_settings (key, value) VALUES ('space_id', ?)", (str(uuid.uuid4()),)
            )
        return self.conn.execute("SELECT value FROM space_settings WHERE key = 'space_id'").fetchone()["value"]

    def _remove_stale_scratch(self) -> None:
        """Remove scratch files whose writing process is gone (and unmarked ones older than a day)."""
        for path in self.tmp.iterdir():
            match = _SCRATCH.match(path.name)
            with contextlib.suppress(OSError):
                stale = (
                    not _process_alive(int(match.group(1)))
                    if match
                    else time.time() - path.stat().st_mtime > _FOREIGN_SCRATCH_AGE
                )
                if stale:
                    shutil.rmtree(path) if path.is_dir() else path.unlink()

    def scratch_path(self, name: str) -> Path:
        """A fresh path in the space's scratch folder (same filesystem as the blobs: renames are cheap)."""
        return self.tmp / f"{os.getpid()}-{uuid.uuid4().hex}-{name}"

    def _blob_path(self, sha256: str) -> Path:
        return self.blobs / sha256[:2] / sha256

    def _asset(self, row, with_versions: bool = False) -> Asset:
        versions = self.conn.execute(
            "SELECT version, size, sha256, created_at, kind FROM asset_versions WHERE asset_id = ? ORDER BY version",
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
            kind=latest.kind,
            versions=history if with_versions else (),
        )

    def list_assets(self) -> list[Asset]:
        rows = self.conn.execute("SELECT * FROM assets ORDER BY created_at, rowid").fetchall()
        return [self._asset(row) for row in rows]

    def assets_named(self, name: str) -> list[Asset]:
        rows = self.conn.execute("SELECT * FROM assets WHERE name = ? ORDER BY created_at, rowid", (name,)).fetchall()
        return [self._asset(row) for row in rows]

    def get_asset(self, id_or_name: str) -> Asset:
        row = self.conn.execute("SELECT * FROM assets WHERE id = ?", (id_or_name,)).fetchone()
        if row:
            return self._asset(row, with_versions=True)
        rows = self.conn.execute("SELECT * FROM assets WHERE name = ?", (id_or_name,)).fetchall()
        if not rows:
            raise NotFound(f"no asset with id or name {id_or_name!r} in the space")
        if len(rows) > 1:
            ids = ", ".join(r["id"] for r in rows)
            raise Conflict(f"{len(rows)} assets are named {id_or_name!r}; name one by id ({ids})")
        return self._asset(rows[0], with_versions=True)

    def _store_blob(self, source: Path) -> tuple[str, int, bool]:
        """Move (if scratch) or copy the file into the blob store; returns (sha256, size, newly stored)."""
        sha256 = file_sha256(source)
        size = source.stat().st_size
        target = self._blob_path(sha256)
        if target.exists():
            if source.parent == self.tmp:
                source.unlink()
            return sha256, size, False
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.parent == self.tmp:
            os.replace(source, target)
        else:
            staging = self.scratch_path(source.name)
            try:
                shutil.copyfile(source, staging)
                os.replace(staging, target)
            finally:
                staging.unlink(missing_ok=True)
        return sha256, size, True

    def _forget_blob(self, sha256: str) -> None:
        """Remove a blob no version uses any more."""
        if not self.conn.execute("SELECT 1 FROM asset_versions WHERE sha256 = ?", (sha256,)).fetchone():
            self._blob_path(sha256).unlink(missing_ok=True)

    def add_asset(
        self,
        source: Path,
        name: str,
        asset_type: str,
        *,
        kind: str = FILE,
        replace_id: str | None = None,
        same_name_ok: bool = False,
    ) -> Asset:
        source = Path(source)
        if not source.is_file():
            raise BadInput(f"{source}: not a file")
        try:
            sha256, size, new_blob = self._store_blob(source)
        except OSError as exc:
            raise Unavailable(f"cannot store {name!r} in the space ({self.blobs}): {exc}") from None
        try:
            asset_id = self._insert_version(name, asset_type, kind, replace_id, same_name_ok, sha256, size)
        except BaseException:
            if new_blob:
                self._forget_blob(sha256)
            raise
        return self.get_asset(asset_id)

    def _insert_version(
        self, name: str, asset_type: str, kind: str, replace_id: str | None, same_name_ok: bool, sha256: str, size: int
    ) -> str:
        stamp = now_iso()
        with transaction(self.conn):
            if replace_id is None:
                taken = self.conn.execute("SELECT id FROM assets WHERE name = ? LIMIT 1", (name,)).fetchone()
                if taken and not same_name_ok:
                    raise Conflict(f"asset {name!r} already exists in the space (id {taken['id']})")
                asset_id, version = str(uuid.uuid4()), 1
                self.conn.execute(
                    "INSERT INTO assets (id, name, asset_type, version, created_at, updated_at)"
                    " VALUES (?, ?, ?, 1, ?, ?)",
                    (asset_id, name, asset_type, stamp, stamp),
                )
            else:
                row = self.conn.execute("SELECT version FROM assets WHERE id = ?", (replace_id,)).fetchone()
                if row is None:
                    raise NotFound(f"no asset with id {replace_id!r} to overwrite")
                asset_id, version = replace_id, row["version"] + 1
                self.conn.execute(
                    "UPDATE assets SET version = ?, updated_at = ? WHERE id = ?", (version, stamp, asset_id)
                )
            self.conn.execute(
                "INSERT INTO asset_versions (asset_id, version, size, sha256, created_at, kind)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (asset_id, version, size, sha256, stamp, kind),
            )
        return asset_id

    def delete_asset_version(self, asset_id: str, version: int) -> None:
        with transaction(self.conn):
            row = self.conn.execute(
                "SELECT sha256 FROM asset_versions WHERE asset_id = ? AND version = ?", (asset_id, version)
            ).fetchone()
            if row is None:
                return
            self.conn.execute("DELETE FROM asset_versions WHERE asset_id = ? AND version = ?", (asset_id, version))
            latest = self.conn.execute(
                "SELECT version, created_at FROM asset_versions WHERE asset_id = ? ORDER BY version DESC LIMIT 1",
                (asset_id,),
            ).fetchone()
            if latest is None:
                self.conn.execute("DELETE FROM assets WHERE id = ?", (asset_id,))
            else:
                self.conn.execute(
                    "UPDATE assets SET version = ?, updated_at = ? WHERE id = ? AND version = ?",
                    (latest["version"], latest["created_at"], asset_id, version),
                )
        self._forget_blob(row["sha256"])

    def download_asset(self, id_or_name: str, dest: Path, *, version: int | None = None) -> Path:
        asset = self.get_asset(id_or_name)
        chosen = asset.at_version(version)
        dest = Path(dest)
        target = dest / asset.name if dest.is_dir() else dest
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        copy_verified(self._blob_path(chosen.sha256), partial, chosen.sha256)
        os.replace(partial, target)
        return target

    def delete_asset(self, id_or_name: str) -> Asset:
        asset = self.get_asset(id_or_name)
        with transaction(self.conn):
            self.conn.execute("DELETE FROM assets WHERE id = ?", (asset.id,))
        for blob in {v.sha256 for v in asset.versions}:
            self._forget_blob(blob)
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
                    raise Conflict(
                        f"metadata entry {taken[0]['model_asset_id']!r} already exists; use -f to overwrite"
                    )
            clash = name_clash(self.metadata(), entries)
            if clash:
                raise clash
            self.conn.executemany(
                "INSERT INTO metadata_entries (model_asset_id, entry, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (model_asset_id) DO UPDATE SET entry = excluded.entry, updated_at = excluded.updated_at",
                [(key, json.dumps(entry), stamp) for key, entry in entries.items()],
            )

    def update_entry(self, model_asset_id: str, change: Callable[[dict], dict], *, create: bool = False) -> dict:
        with transaction(self.conn):
            row = self.conn.execute(
                "SELECT entry FROM metadata_entries WHERE model_asset_id = ?", (model_asset_id,)
            ).fetchone()
            if row is None and not create:
                raise NotFound(f"no metadata entry for model asset id {model_asset_id!r}", field="--model-asset-id")
            entry = change(json.loads(row["entry"]) if row else {})
            clash = name_clash(self.metadata(), {model_asset_id: entry})
            if clash:
                raise clash
            self.conn.execute(
                "INSERT INTO metadata_entries (model_asset_id, entry, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (model_asset_id) DO UPDATE SET entry = excluded.entry, updated_at = excluded.updated_at",
                (model_asset_id, json.dumps(entry), now_iso()),
            )
        return entry

    def delete_entry(self, model_asset_id: str) -> dict:
        with transaction(self.conn):
            row = self.conn.execute(
                "SELECT entry FROM metadata_entries WHERE model_asset_id = ?", (model_asset_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"unknown model asset id {model_asset_id!r}", field="--model-asset-id")
            self.conn.execute("DELETE FROM metadata_entries WHERE model_asset_id = ?", (model_asset_id,))
        return json.loads(row["entry"])
