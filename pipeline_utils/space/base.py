"""The deployment-space interface: assets with ids and versions, and the metadata document.

The local backend implements it on SQLite and plain files; a WML deployment space
(ibm-watson-machine-learning) implements the same methods, so the flow never asks which.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline_utils.backends import Configurable
from pipeline_utils.errors import PipelineError

METADATA_FILENAME = "deployment_metadata.yml"


@dataclass(frozen=True)
class AssetVersion:
    """One stored version of an asset's content."""

    version: int
    size: int
    sha256: str
    created_at: str


@dataclass(frozen=True)
class Asset:
    """An asset of the space: a model archive, a dependency archive, or any file."""

    id: str
    name: str
    asset_type: str
    size: int
    sha256: str
    version: int
    created_at: str
    updated_at: str
    versions: tuple[AssetVersion, ...] = field(default=())

    def as_dict(self, *, with_versions: bool = False) -> dict:
        """A JSON-ready record."""
        record = asdict(self)
        if with_versions:
            record["versions"] = [asdict(v) for v in self.versions]
        else:
            record.pop("versions")
        return record


class Space(Configurable, ABC):
    """A deployment space: what the flow stages into and reads back from."""

    space_id: str

    @abstractmethod
    def list_assets(self) -> list[Asset]:
        """All assets, oldest first."""

    @abstractmethod
    def assets_named(self, name: str) -> list[Asset]:
        """The assets with this exact name (several may share one)."""

    @abstractmethod
    def get_asset(self, id_or_name: str) -> Asset:
        """One asset by id, or by name when the name is unique; its versions included."""

    @abstractmethod
    def add_asset(self, source: Path, name: str, asset_type: str, *, replace_id: str | None = None) -> Asset:
        """Store a file as a new asset, or as a new version of ``replace_id`` (same id)."""

    @abstractmethod
    def download_asset(self, id_or_name: str, dest: Path, *, version: int | None = None) -> Path:
        """Copy an asset's content (latest or given version) to ``dest`` (a folder or file path)."""

    @abstractmethod
    def delete_asset(self, id_or_name: str) -> Asset:
        """Remove an asset and all its versions."""

    @abstractmethod
    def metadata(self) -> dict[str, dict]:
        """The deployment-metadata document: entries keyed by model asset id."""

    @abstractmethod
    def put_entries(self, entries: dict[str, dict], *, overwrite: bool = False) -> None:
        """Add entries in one atomic write; existing keys are an error unless ``overwrite``."""

    @abstractmethod
    def update_entry(self, model_asset_id: str, change: Callable[[dict], dict]) -> dict:
        """Atomically read, change and write back one entry; returns the new entry."""

    @abstractmethod
    def delete_entry(self, model_asset_id: str) -> dict:
        """Remove one entry; returns what was removed."""

    def entry(self, model_asset_id: str) -> dict:
        """One entry by model asset id."""
        document = self.metadata()
        if model_asset_id not in document:
            raise PipelineError(f"--model-asset-id: no metadata entry for model asset id {model_asset_id!r}")
        return document[model_asset_id]

    def entry_for_deployment(self, deployment_name: str) -> tuple[str, dict]:
        """The (model asset id, entry) whose ``wmla_deployment.deployment_name`` is this name."""
        for key, entry in self.metadata().items():
            if (entry.get("wmla_deployment") or {}).get("deployment_name") == deployment_name:
                return key, entry
        raise PipelineError(f"--name: no metadata entry has deployment name {deployment_name!r}")
