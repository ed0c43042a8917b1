"""Local storage volumes: folders under ``$MLOPS_VOLUMES_DIR`` (default ``$MLOPS_HOME/volumes``), each standing
for a CPD storage volume of the same name."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pipeline_utils.config.settings import volumes_root
from pipeline_utils.volumes import check_volume_name
from pipeline_utils.volumes.folders import FolderVolumes, resolve_in_folder


def volume_path(name: str, *, create: bool = False, root: Path | None = None) -> Path:
    """The directory of the volume ``name``; unknown volumes are NotFound unless ``create``."""
    volumes = LocalVolumes(root)
    check_volume_name(name)
    if create:
        volumes.create_volume(name)
    return volumes.local_path(name)


def resolve_on_volume(volume: Path, relative: str) -> Path:
    """Resolve ``relative`` inside the volume folder ``volume``, links included; leaving it is a BadInput."""
    return resolve_in_folder(volume, relative)


class LocalVolumes(FolderVolumes):
    """Volumes as folders on this machine, under the state directory unless configured elsewhere."""

    def __init__(self, root: Path | None = None) -> None:
        folder = Path(root) if root is not None else volumes_root()
        folder.mkdir(parents=True, exist_ok=True)
        super().__init__(folder)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> LocalVolumes:
        """Volumes under ``$MLOPS_VOLUMES_DIR``, or ``$MLOPS_HOME/volumes`` by default."""
        return cls(volumes_root(environ))

    def diagnose(self) -> str:
        """Where the volumes are and how many."""
        return f"volumes under {self.root}: {len(self.list_volumes())}"
