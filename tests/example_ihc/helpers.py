"""Paths of the image example, and its folders on the import path (appended: they shadow nothing)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "ihc"
DEPLOYMENT = EXAMPLE / "ihc_kernel"
TRAIN_SCRIPT = EXAMPLE / "training" / "train.py"

for _p in (EXAMPLE, DEPLOYMENT):
    if str(_p) not in sys.path:
        sys.path.append(str(_p))
