"""Files and folders to stage: checked (a link may not leave its folder), walked, and zipped like ``zip -r``."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

from pipeline_utils.errors import BadInput


def check_links(folder: Path, option: str) -> None:
    """Refuse a symbolic link in ``folder`` that points outside it or to nothing (its content would leak or vanish)."""
    root = Path(os.path.realpath(folder))
    for current, dirs, files in os.walk(folder):
        for name in sorted(dirs + files):
            link = Path(current) / name
            if not link.is_symlink():
                continue
            target = Path(os.path.realpath(link))
            if not target.exists():
                raise BadInput(f"{link}: symbolic link to {os.readlink(link)} points to nothing", field=option)
            if target != root and root not in target.parents:
                raise BadInput(f"{link}: symbolic link leaves the folder (to {target})", field=option)


def check_source(path: str | Path, option: str) -> Path:
    """A path to stage must exist; a folder must hold at least one file and no link leaving it."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"{path}: no such file or folder", field=option)
    if path.is_dir():
        check_links(path, option)
        if not any(True for _ in folder_files(path)):
            raise BadInput(f"{path}: folder is empty", field=option)
    return path


def asset_name(path: Path) -> str:
    """Folders are staged as ``<folder>.zip``; files under their own name."""
    return f"{path.name}.zip" if path.is_dir() else path.name


def folder_files(folder: Path) -> Iterator[tuple[str, Path]]:
    """(path inside the folder, file) for every file, sorted; links inside the folder are followed, cycles cut."""
    above: dict[str, frozenset[str]] = {str(folder): frozenset()}
    for current, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(current)
        seen = above.pop(current, frozenset()) | {real}
        dirs[:] = sorted(d for d in dirs if os.path.realpath(os.path.join(current, d)) not in seen)
        for name in dirs:
            above[os.path.join(current, name)] = seen
        for name in sorted(files):
            path = Path(current) / name
            if path.is_file():
                yield path.relative_to(folder).as_posix(), path


def zip_folder(folder: Path, target: Path) -> Path:
    """Zip a folder's contents (paths relative to the folder), like ``cd folder && zip -r target .``."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name, path in folder_files(folder):
            archive.write(path, name)
    return target
