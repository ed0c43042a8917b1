"""Writes on the storage volume that stay on it: a symbolic link on the way is refused, never followed.

Whoever can write the volume can plant a link at any folder or file the kernel writes to. So every
folder is created and opened one level at a time, relative to its open parent (``dir_fd``) and with
``O_NOFOLLOW``, and files are opened the same way: a link is refused wherever it points, and nothing
can be swapped in between a check and the write. Files must be plain files with no other hard link.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a planted FIFO


class UnsafePath(OSError):
    """A write refused because its path is not plain folders and a plain file on the volume."""


def _parts(relative: str) -> list[str]:
    parts = relative.split("/") if relative else []
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"{relative!r} is not a plain relative path")
    return parts


def _refusal(name: str, dir_fd: int | None, shown: str, error: OSError, folder: bool) -> OSError:
    """What to raise when opening ``name`` failed: a refusal if it is a link or of the wrong type, else ``error``."""
    try:
        mode = os.lstat(name, dir_fd=dir_fd).st_mode
    except OSError:
        mode = 0
    if stat.S_ISLNK(mode):
        return UnsafePath(f"{shown} is a symbolic link")
    if folder and mode and not stat.S_ISDIR(mode):
        return UnsafePath(f"{shown} is not a folder")
    if not folder and mode and not stat.S_ISREG(mode):
        return UnsafePath(f"{shown} is not a plain file")
    return error


def _open_folder(name: str, dir_fd: int | None, shown: str) -> int:
    try:
        return os.open(name, _FOLDER, dir_fd=dir_fd)
    except OSError as exc:
        raise _refusal(name, dir_fd, shown, exc, folder=True) from None


@contextmanager
def folder(root: Path, relative: str) -> Iterator[int]:
    """An open descriptor of the folder ``relative`` under ``root``, created one level at a time; links refused."""
    fd = _open_folder(os.fspath(root), None, "the storage volume root")
    try:
        done: list[str] = []
        for part in _parts(relative):
            done.append(part)
            with suppress(FileExistsError):
                os.mkdir(part, 0o777, dir_fd=fd)
            child = _open_folder(part, fd, "/".join(done))
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _open_file(dir_fd: int, name: str, shown: str, flags: int) -> int:
    try:
        fd = os.open(name, _FILE | flags, 0o666, dir_fd=dir_fd)
    except OSError as exc:
        raise _refusal(name, dir_fd, shown, exc, folder=False) from None
    info = os.fstat(fd)
    problem = "is not a plain file" if not stat.S_ISREG(info.st_mode) else "has other hard links"
    if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
        os.close(fd)
        raise UnsafePath(f"{shown} {problem}")
    return fd


def write_file(dir_fd: int, name: str, data: bytes, shown: str) -> None:
    """Replace the contents of the file ``name`` in the open folder ``dir_fd`` (``shown`` names it in errors)."""
    fd = _open_file(dir_fd, name, shown, 0)
    with os.fdopen(fd, "wb") as handle:
        handle.truncate(0)
        handle.write(data)


def append_text(root: Path, relative: str, text: str) -> None:
    """Append ``text`` to the file ``relative`` under ``root``, creating its folders; links refused."""
    parent, _, name = relative.rpartition("/")
    with folder(root, parent) as dir_fd:
        fd = _open_file(dir_fd, name, relative, os.O_APPEND)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write(text)
