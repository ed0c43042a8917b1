"""Local storage volumes: folders under ``$MLOPS_VOLUMES_DIR`` (default ``$MLOPS_HOME/volumes``), each standing
for a CPD storage volume of the same name."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pipeline_utils.config.settings import volumes_root
from pipeline_utils.errors import BadInput, NotFound
from pipeline_utils.fsutil import atomic_write_bytes
from pipeline_utils.volumes import FileInfo, StorageVolumes, check_volume_name, clean_path


def volume_path(name: str, *, create: bool = False, root: Path | None = None) -> Path:
    """The directory of the volume ``name``; unknown volumes are NotFound unless ``create``."""
    check_volume_name(name)
    path = (root or volumes_root()) / name
    if create:
        path.mkdir(parents=True, exist_ok=True)
    elif not path.is_dir():
        raise NotFound(f"unknown volume {name!r} (no folder {path})", field="volume_display_name")
    return path


def resolve_on_volume(volume: Path, relative: str) -> Path:
    """Resolve ``relative`` inside ``volume``, links included; a path that leaves the volume is a BadInput."""
    root = Path(volume).resolve()
    target = (root / clean_path(relative)).resolve()
    if target != root and root not in target.parents:
        raise BadInput(f"path {relative!r} leaves the storage volume")
    return target


def _info(path: Path, relative: str) -> FileInfo:
    stat = path.stat()
    return FileInfo(relative, 0 if path.is_dir() else stat.st_size, stat.st_mtime, path.is_dir())


class LocalVolumes(StorageVolumes):
    """Volumes as folders on this machine."""

    def __init__(self, root: Path | None = None) -> None:
        self._root = root

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> LocalVolumes:
        """Volumes under ``$MLOPS_VOLUMES_DIR`` or ``$MLOPS_HOME/volumes`` (resolved when first used)."""
        return cls(Path(environ["MLOPS_VOLUMES_DIR"]).expanduser().resolve() if environ.get("MLOPS_VOLUMES_DIR")
                   else None)

    @property
    def root(self) -> Path:
        """The folder holding the volumes."""
        if self._root is None:
            return volumes_root()
        self._root.mkdir(parents=True, exist_ok=True)
        return self._root

    def _path(self, volume: str, path: str) -> Path:
        return resolve_on_volume(volume_path(volume, root=self.root), path)

    def list_volumes(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def create_volume(self, volume: str) -> None:
        volume_path(volume, create=True, root=self.root)

    def exists(self, volume: str, path: str = "") -> bool:
        try:
            return self._path(volume, path).exists()
        except NotFound:
            return False

    def list(self, volume: str, path: str = "") -> list[FileInfo]:
        folder = self._path(volume, path)
        prefix = clean_path(path)
        found = []
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return []
        for entry in entries:
            try:
                stat = entry.stat()
            except OSError:
                continue
            is_dir = entry.is_dir()
            relative = f"{prefix}/{entry.name}" if prefix else entry.name
            found.append(FileInfo(relative, 0 if is_dir else stat.st_size, stat.st_mtime, is_dir))
        return found

    def stat(self, volume: str, path: str) -> FileInfo:
        target = self._path(volume, path)
        if not target.exists():
            raise NotFound(f"{path!r} not found on volume {volume!r}", field="path")
        return _info(target, clean_path(path))

    def read_bytes(self, volume: str, path: str) -> bytes:
        target = self._path(volume, path)
        if not target.is_file():
            raise NotFound(f"{path!r} not found on volume {volume!r}", field="path")
        return target.read_bytes()

    def write_bytes(self, volume: str, path: str, data: bytes) -> FileInfo:
        relative = clean_path(path)
        if not relative:
            raise BadInput("a file path is needed, not the volume root", field="path")
        target = self._path(volume, relative)
        atomic_write_bytes(target, data)
        return _info(target, relative)

    def local_path(self, volume: str, path: str = "") -> Path:
        return self._path(volume, path)
