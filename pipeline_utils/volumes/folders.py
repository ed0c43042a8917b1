"""Volumes as the sub-folders of one folder on this machine: the local backend's store, and any mounted volumes.

Paths are resolved with their links before use, so a link that leads out of the volume is refused like ``..``.
Each volume's folder is resolved once per store, and only the parts of a path below it are checked for links
(one ``lstat`` each), which keeps a read within a few microseconds of a plain ``open``.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline_utils.errors import BadInput, NotFound
from pipeline_utils.fsutil import atomic_write_bytes
from pipeline_utils.volumes import FileInfo, StorageVolumes, Volume, check_volume_name, clean_path


def resolve_in_folder(root: Path, relative: str, field: str = "path") -> Path:
    """``relative`` resolved inside folder ``root``, links included; leaving the folder is a BadInput."""
    return _inside(os.path.realpath(root), relative, field)


def _inside(base: str, relative: str, field: str) -> Path:
    """``relative`` below the resolved folder ``base``: each part that is a link is resolved and must stay inside."""
    target = base
    for part in filter(None, clean_path(relative, field).split("/")):
        target = os.path.join(target, part)
        if os.path.islink(target):
            target = os.path.realpath(target)
            if os.path.commonpath((base, target)) != base:
                raise BadInput(f"{relative!r} leaves the storage volume", field=field)
    return Path(target)


def _info(path: Path, relative: str) -> FileInfo:
    stat = path.stat()
    is_dir = path.is_dir()
    return FileInfo(relative, 0 if is_dir else stat.st_size, stat.st_mtime, is_dir)


class FolderVolumes(StorageVolumes):
    """Each volume is a folder directly under ``root``; files are plain files, written atomically."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root)
        self._bases: dict[str, str] = {}

    @property
    def root(self) -> Path:
        """The folder holding the volumes."""
        return self._root

    def folder(self, volume: str, *, create: bool = False) -> Path:
        """The folder of ``volume``; an unknown volume is NotFound unless ``create``."""
        if not isinstance(volume, str) or volume in ("", ".", "..") or "/" in volume or "\\" in volume:
            raise BadInput(f"{volume!r} is not a valid volume name", field="volume_display_name")
        path = self.root / volume
        if create:
            path.mkdir(parents=True, exist_ok=True)
        elif not path.is_dir():
            raise NotFound(f"unknown volume {volume!r} (no folder {path})", field="volume_display_name")
        return path

    def _path(self, volume: str, path: str) -> Path:
        base = self._bases.get(volume)
        if base is None:
            base = self._bases[volume] = os.path.realpath(self.folder(volume))
        return _inside(base, path, "path")

    def list_volumes(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []

    def create_volume(self, volume: str) -> None:
        self.folder(check_volume_name(volume), create=True)

    def exists(self, volume: str, path: str = "") -> bool:
        try:
            folder = self.folder(volume)
        except NotFound:
            return False
        return resolve_in_folder(folder, path).exists()

    def list(self, volume: str, path: str = "") -> list[FileInfo]:
        folder = self._path(volume, path)
        prefix = clean_path(path)
        base = self._bases[volume]
        found = []
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return []
        for entry in entries:
            try:
                if entry.is_symlink() and os.path.commonpath((base, os.path.realpath(entry.path))) != base:
                    continue
                stat = entry.stat()
                is_dir = entry.is_dir()
            except OSError:
                continue
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
        try:
            return target.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(f"no file {path!r} on volume {volume!r}", field="path") from None

    def write_bytes(self, volume: str, path: str, data: bytes) -> FileInfo:
        relative = clean_path(path)
        if not relative:
            raise BadInput("a file path is needed, not the volume root", field="path")
        target = self._path(volume, relative)
        if target.is_dir():
            raise BadInput(f"{relative!r} is a folder on volume {volume!r}", field="path")
        atomic_write_bytes(target, data)
        return _info(target, relative)

    def mkdir(self, volume: str, path: str) -> FileInfo:
        relative = clean_path(path)
        target = self._path(volume, relative)
        try:
            target.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise BadInput(f"{relative!r} is a file on volume {volume!r}, not a folder", field="path") from None
        return _info(target, relative)

    def local_path(self, volume: str, path: str = "") -> Path:
        return self._path(volume, path)


def folder_volume(folder: Path) -> Volume:
    """A folder on this machine as a volume (its parent holds it), e.g. for a definition called on a folder."""
    folder = Path(folder).resolve()
    return Volume(FolderVolumes(folder.parent), folder.name)
