"""Image files on a volume folder, and the recent ground-truth/prediction pairs matched by file name."""

from __future__ import annotations

import os
import time
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
DAY_SECONDS = 86400.0


def image_files(folder: Path) -> dict[str, float]:
    """Image files directly in ``folder`` (not hidden, not recursive): name -> modification time."""
    found: dict[str, float] = {}
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return found
    for entry in entries:
        if entry.name.startswith(".") or os.path.splitext(entry.name)[1].lower() not in IMAGE_SUFFIXES:
            continue
        try:
            if entry.is_file():
                found[entry.name] = entry.stat().st_mtime
        except OSError:
            continue
    return found


def recent(files: dict[str, float], days: float, now: float | None = None) -> list[str]:
    """Names of ``files`` created or modified in the last ``days`` days, sorted."""
    cutoff = (time.time() if now is None else now) - days * DAY_SECONDS
    return sorted(name for name, mtime in files.items() if mtime >= cutoff)


def recent_pairs(dir_gt: Path, dir_pred: Path, days: float, now: float | None = None) -> list[str]:
    """File names present in both folders whose two files are both recent, sorted."""
    gt = recent(image_files(dir_gt), days, now)
    pred = set(recent(image_files(dir_pred), days, now))
    return [name for name in gt if name in pred]
