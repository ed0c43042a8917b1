"""Storage volumes: named file stores (CPD storage volumes, local folders) the flow reads and writes through.

Paths are relative to the volume's root, with ``/`` separators; a path that is absolute, has a ``..``
part or (on a backend that can tell) resolves outside the volume through a link is a :class:`BadInput`
naming the field. The flow asks :func:`get_volumes` or :func:`volume` for a volume, never a backend.
"""

from __future__ import annotations

import os
import posixpath
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from pipeline_utils.backends import Configurable
from pipeline_utils.errors import BadInput

VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class FileInfo:
    """One file or folder on a volume: its path from the volume root, size in bytes, mtime (epoch seconds)."""

    path: str
    size: int
    mtime: float
    is_dir: bool = False

    @property
    def name(self) -> str:
        """The last part of the path."""
        return posixpath.basename(self.path)


def check_volume_name(name: object, field: str = "volume_display_name") -> str:
    """A volume name: letters, digits, ``.``, ``_``, ``-``, starting with a letter or digit."""
    if not isinstance(name, str) or not VOLUME_NAME.match(name):
        raise BadInput(f"{name!r} is not a valid volume name", field=field)
    return name


def clean_path(path: object, field: str = "path") -> str:
    """A normalized path relative to a volume root ('' is the root); absolute or ``..`` paths are refused."""
    if not isinstance(path, str) or "\x00" in path:
        raise BadInput(f"{path!r} is not a path on a storage volume", field=field)
    text = path.replace("\\", "/").strip()
    if text.startswith("/"):
        raise BadInput(f"{path!r} must be relative to the storage volume's root", field=field)
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise BadInput(f"{path!r} leaves the storage volume", field=field)
    return "/".join(parts)


def join(*parts: str) -> str:
    """Join volume paths with ``/``."""
    return clean_path("/".join(p.strip("/") for p in parts if p))


class StorageVolumes(Configurable, ABC):
    """Named storage volumes. Every method blocks until done; writes are atomic (readers never see half a file).

    Every method that takes a ``path`` raises :class:`BadInput` (field ``path``) when it is absolute, has a
    ``..`` part or leads out of the volume through a link; :class:`~pipeline_utils.errors.NotFound` (field
    ``volume_display_name``) for an unknown volume; :class:`~pipeline_utils.errors.Unavailable` when the
    service cannot be reached. Reads never change anything.
    """

    @abstractmethod
    def list_volumes(self) -> list[str]:
        """The names of the volumes, sorted."""

    @abstractmethod
    def create_volume(self, volume: str) -> None:
        """Create a volume; idempotent (an existing volume is left as it is). A bad name is a BadInput."""

    @abstractmethod
    def exists(self, volume: str, path: str = "") -> bool:
        """Whether the volume (and the path on it) exists; an unknown volume is False, a bad path a BadInput."""

    @abstractmethod
    def list(self, volume: str, path: str = "") -> list[FileInfo]:
        """The files and folders directly in folder ``path``, sorted by name, each with size and mtime.

        A missing folder lists nothing; links that lead out of the volume are not listed.
        """

    @abstractmethod
    def stat(self, volume: str, path: str) -> FileInfo:
        """Size and mtime of one file or folder; NotFound (field ``path``) when missing."""

    @abstractmethod
    def read_bytes(self, volume: str, path: str) -> bytes:
        """The content of one file; NotFound (field ``path``) when there is no such file."""

    @abstractmethod
    def write_bytes(self, volume: str, path: str, data: bytes) -> FileInfo:
        """Write one file atomically, creating its folders; replaces an existing file (so it is idempotent)."""

    @abstractmethod
    def mkdir(self, volume: str, path: str) -> FileInfo:
        """Create folder ``path`` with its parents; idempotent. A file in the way is a BadInput."""

    def local_path(self, volume: str, path: str = "") -> Path | None:
        """The folder or file on this machine when the volume is mounted here (else None): for local processes.

        Checked like every path (BadInput when it leaves the volume); the file need not exist.
        """
        return None

    def volume(self, name: str) -> Volume:
        """A handle on one volume (nothing is checked on the store: see :meth:`exists`)."""
        return Volume(self, check_volume_name(name))


class Volume(os.PathLike):
    """One volume, as metric definitions and kernels see it: list, stat, read, write by relative path.

    It is also path-like when the volume is mounted on this machine, so definitions written against a
    folder (``Path(volume) / dir_gt``) keep working on the local backend.
    """

    def __init__(self, store: StorageVolumes, name: str) -> None:
        self.store, self.name = store, name

    def list(self, path: str = "") -> list[FileInfo]:
        """Files and folders directly in ``path``."""
        return self.store.list(self.name, path)

    def stat(self, path: str) -> FileInfo:
        """One file's size and mtime."""
        return self.store.stat(self.name, path)

    def exists(self, path: str = "") -> bool:
        """Whether ``path`` exists on the volume."""
        return self.store.exists(self.name, path)

    def read_bytes(self, path: str) -> bytes:
        """One file's content."""
        return self.store.read_bytes(self.name, path)

    def write_bytes(self, path: str, data: bytes) -> FileInfo:
        """Write one file atomically."""
        return self.store.write_bytes(self.name, path, data)

    def mkdir(self, path: str) -> FileInfo:
        """Create a folder (and its parents); idempotent."""
        return self.store.mkdir(self.name, path)

    def local_path(self, path: str = "") -> Path | None:
        """The local folder or file, when mounted here."""
        return self.store.local_path(self.name, path)

    def __fspath__(self) -> str:
        local = self.local_path()
        if local is None:
            raise TypeError(f"storage volume {self.name!r} is not mounted on this machine; use its read/list methods")
        return str(local)

    def __truediv__(self, other: str) -> Path:
        return Path(self) / other

    def __repr__(self) -> str:
        return f"Volume({self.name!r})"


def get_volumes() -> StorageVolumes:
    """The configured storage volumes (``$MLOPS_VOLUMES`` or ``$MLOPS_BACKEND``)."""
    from pipeline_utils.backends import get_volumes as configured

    return configured()


def volume(name: str) -> Volume:
    """A handle on the configured backend's volume ``name``."""
    return get_volumes().volume(name)


def as_volume(volume: Volume | os.PathLike | str) -> Volume:
    """``volume`` itself, or a folder on this machine seen as a volume (for definitions called on a folder)."""
    if isinstance(volume, Volume):
        return volume
    from pipeline_utils.volumes.folders import folder_volume

    return folder_volume(Path(volume))
