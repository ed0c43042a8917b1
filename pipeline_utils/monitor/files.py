"""Image files in a folder of a storage volume, and the recent ground-truth/prediction pairs matched by name."""

from __future__ import annotations

import posixpath
import time

from pipeline_utils.volumes import Volume

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
DAY_SECONDS = 86400.0


def is_image(name: str) -> bool:
    """Whether a file name is a visible image file."""
    return not name.startswith(".") and posixpath.splitext(name)[1].lower() in IMAGE_SUFFIXES


def image_files(volume: Volume, folder: str) -> dict[str, float]:
    """Image files directly in ``folder`` of ``volume`` (not hidden, not recursive): name -> modification time.

    A missing folder has none.
    """
    return {info.name: info.mtime for info in volume.list(folder) if not info.is_dir and is_image(info.name)}


def recent(files: dict[str, float], days: float, now: float | None = None) -> list[str]:
    """Names of ``files`` created or modified in the last ``days`` days, sorted."""
    cutoff = (time.time() if now is None else now) - days * DAY_SECONDS
    return sorted(name for name, mtime in files.items() if mtime >= cutoff)


def recent_pairs(volume: Volume, dir_gt: str, dir_pred: str, days: float, now: float | None = None) -> list[str]:
    """File names present in both folders whose two files are both recent, sorted."""
    gt = recent(image_files(volume, dir_gt), days, now)
    pred = set(recent(image_files(volume, dir_pred), days, now))
    return [name for name in gt if name in pred]
