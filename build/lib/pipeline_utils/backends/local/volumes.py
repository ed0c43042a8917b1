"""Local storage volumes: directories standing for the CPD storage volumes of the seeds."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline_utils.config.settings import volumes_root
from pipeline_utils.errors import PipelineError

_VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def volume_path(name: str, *, create: bool = False) -> Path:
    """The directory of the volume ``name``; unknown volumes are an error unless ``create``."""
    if not name or not _VOLUME_NAME.match(name):
        raise PipelineError(f"volume_display_name: {name!r} is not a valid volume name")
    path = volumes_root() / name
    if create:
        path.mkdir(parents=True, exist_ok=True)
    elif not path.is_dir():
        raise PipelineError(f"volume_display_name: unknown volume {name!r} (no folder {path})")
    return path


def resolve_on_volume(volume: Path, relative: str) -> Path:
    """Resolve ``relative`` inside ``volume``; a path that leaves the volume is an error."""
    root = volume.resolve()
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise PipelineError(f"path {relative!r} leaves the storage volume")
    return target
