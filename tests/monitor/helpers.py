"""Small masks and volumes for the monitor tests."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline_utils.volumes import get_volumes

COLORS = {"R": (200, 30, 10), "B": (0, 20, 255), "K": (0, 0, 0), "W": (255, 255, 255)}
VOLUME = "TestVolume"


def mask(rows: list[str]) -> np.ndarray:
    """An RGB mask from rows of letters: R positive (red), B negative (blue), K black, W white."""
    return np.array([[COLORS[c] for c in row] for row in rows], dtype=np.uint8)


def write_mask(path: Path, rows: list[str], age_days: float = 0.0) -> Path:
    """Save a mask as PNG, with its modification time ``age_days`` in the past."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask(rows)).save(path)
    if age_days:
        stamp = time.time() - age_days * 86400
        os.utime(path, (stamp, stamp))
    return path


def volume() -> Path:
    """The test volume's folder (created): the local backend's volumes are folders."""
    volumes = get_volumes()
    volumes.create_volume(VOLUME)
    return volumes.local_path(VOLUME)


def monitor_config(**overrides: object) -> dict:
    """A segmentation monitor configuration on the test volume."""
    return {
        "dir_gt": "eval/gt",
        "dir_pred": "eval/pred",
        "most_recent": 1,
        "volume_display_name": VOLUME,
        "thresholds": {},
    } | overrides


# The worked example (3 rows x 4 columns, 12 pixels) used across the tests:
#   gt   R R B B      pred R K B R
#        K K K K           K K B K
#        B B K K           B B B K
GT = ["RRBB", "KKKK", "BBKK"]
PRED = ["RKBR", "KKBK", "BBBK"]


def write_pairs(names: list[str], gt: list[str] = GT, pred: list[str] = PRED, age_days: float = 0.0) -> Path:
    """Write the same gt/pred pair under each name on the test volume; returns the volume."""
    root = volume()
    for name in names:
        write_mask(root / "eval/gt" / name, gt, age_days)
        write_mask(root / "eval/pred" / name, pred, age_days)
    return root
