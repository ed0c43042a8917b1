"""The deployment-space interface: assets with ids and versions, and the metadata document.

The local backend implements it on SQLite and plain files; a WML deployment space
(ibm-watsonx-ai) implements the same methods, so the flow never asks which. Every method
raises the typed errors of :mod:`pipeline_utils.errors`; a method that raises changes nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline_utils.backends import Configurable
from pipeline_utils.errors import Conflict, NotFound

METADATA_FILENAME = "deployment_metadata.yml"
FILE, FOLDER = "file", "folder"


@dataclass(frozen=True)
class AssetVersion:
    """One stored version of an asset's content; ``kind`` says whether it is a file or a folder we zipped."""

    version: int
    size: int
    sha256: str
    created_at: str
    kind: str | None = None


@dataclass(frozen=True)
class Asset:
    """An asset of the space: a model, a dependency archive, or any file.

    ``kind`` (of the latest version) is ``file`` for a file stored as given, ``folder`` for a folder the
    space stores zipped (unpack it on download), ``None`` for assets stored before kinds were recorded.
    """

    id: str
    name: str
    asset_type: str
    size: int
    sha256: str
    version: int
    created_at: str
    updated_at: str
    kind: str | None = None
    versions: tuple[AssetVersion, ...] = field(default=())

    def as_dict(self, *, with_versions: bool = False) -> dict:
        """A JSON-ready record."""
        record = asdict(self)
        if with_versions:
            record["versions"] = [asdict(v) for v in self.versions]
        else:
            record.pop("versions")
        return record

    def at_version(self, version: int | None) -> AssetVersion:
        """One version of this asset (``None``: the latest); NotFound when it has no such version."""
        wanted = version or self.version
        for candidate in self.versions:
            if candidate.version == wanted:
                return candidate
        raise NotFound(f"asset {self.name!r} ({self.id}) has no version {wanted}", field="version")


def deployment_name_of(entry: Mapping | None) -> str | None:
    """The entry's ``wmla_deployment.deployment_name`` (None for a draft without one)."""
    return ((entry or {}).get("wmla_deployment") or {}).get("deployment_name")


def runs_deployment(entry: Mapping | None) -> bool:
    """Whether the entry says a deployment runs it (it records what was deployed, or a URL)."""
    wmla = (entry or {}).get("wmla_deployment") or {}
    return bool(wmla.get("deployed") or wmla.get("deployment_url"))


def name_clash(document: Mapping[str, dict], changes: Mapping[str, dict]) -> Conflict | None:
    """The Conflict when ``changes`` would give an entry a deployment name another entry holds.

    Names an entry already had stay allowed (entries written before the rule may share one).
    """
    after = {**document, **changes}
    for key, entry in changes.items():
        name = deployment_name_of(entry)
        if name is None or deployment_name_of(document.get(key)) == name:
            continue
        others = [other for other, value in after.items() if other != key and deployment_name_of(value) == name]
        if others:
            return Conflict(
                f"{name!r} belongs to metadata entry {others[0]}; a deployment name belongs to one entry only "
                f"(entry {key})",
                field="wmla_deployment.deployment_name",
            )
    return None


class Space(Configurable, ABC):
    """A deployment space: what the flow stages into and reads back from."""

    space_id: str

    @abstractmethod
    def scratch_path(self, name: str) -> Path:
        """A fresh local path, ending in ``name``, for a file to pass to :meth:`add_asset` (e.g. a zip).

        Nothing is created. The caller removes the file when done; files left behind by a process that is
        gone (killed mid-write) are removed when the space is next opened. Never blocks; does not raise.
        """

    @abstractmethod
    def list_assets(self) -> list[Asset]:
        """All assets, oldest first, latest version each (without history). Read-only."""

    @abstractmethod
    def assets_named(self, name: str) -> list[Asset]:
        """The assets with this exact name, oldest first (several may share one). Read-only; may be empty."""

    @abstractmethod
    def get_asset(self, id_or_name: str) -> Asset:
        """One asset by id, or by name when the name is unique, with its versions.

        Raises NotFound when nothing matches and Conflict when several assets share the name.
        """

    @abstractmethod
    def add_asset(
        self,
        source: Path,
        name: str,
        asset_type: str,
        *,
        kind: str = FILE,
        replace_id: str | None = None,
        same_name_ok: bool = False,
    ) -> Asset:
        """Store a file as a new asset, or as a new version of ``replace_id`` (same id); blocks until stored.

        The content is visible only once completely stored. A file under :meth:`scratch_path` is consumed
        (moved); any other file is copied. Without ``replace_id`` the name must be free, checked and
        inserted in one step, so concurrent callers never make two assets of one name, unless
        ``same_name_ok`` (a second asset of that name, on purpose). Not idempotent: each call adds a version.
        Raises BadInput (source not a file), NotFound (``replace_id`` unknown), Conflict (name taken).
        """

    @abstractmethod
    def delete_asset_version(self, asset_id: str, version: int) -> None:
        """Undo one :meth:`add_asset`: remove that version; the asset goes when it was its only version.

        The asset's latest version and update time become those of the highest remaining version.
        Idempotent: a version or asset already gone is not an error.
        """

    @abstractmethod
    def download_asset(self, id_or_name: str, dest: Path, *, version: int | None = None) -> Path:
        """Copy an asset's content (latest or given version) to ``dest`` (an existing folder, or a file path).

        Blocks until the copy is complete and its sha256 matches the stored one; the file appears at once,
        complete, or not at all. Raises NotFound (asset or version), Conflict (ambiguous name) and
        Unavailable (the stored content does not match its sha256: nothing is left at ``dest``).
        """

    @abstractmethod
    def delete_asset(self, id_or_name: str) -> Asset:
        """Remove an asset and all its versions; returns it. Raises NotFound, Conflict (ambiguous name)."""

    @abstractmethod
    def metadata(self) -> dict[str, dict]:
        """The deployment-metadata document: entries keyed by model asset id, oldest first. Read-only."""

    @abstractmethod
    def put_entries(self, entries: dict[str, dict], *, overwrite: bool = False) -> None:
        """Add entries in one atomic write: all are stored or none.

        Raises Conflict when a key exists (unless ``overwrite``) or when an entry would take a deployment
        name another entry holds (see :func:`name_clash`).
        """

    @abstractmethod
    def update_entry(self, model_asset_id: str, change: Callable[[dict], dict], *, create: bool = False) -> dict:
        """Atomically read, change and write back one entry; returns the new entry.

        ``change`` runs inside the write (it may run again on retry, so keep it free of side effects);
        with ``create`` a missing entry is created from ``change({})``. Raises NotFound (no such entry and
        not ``create``) and Conflict (the new entry would take another entry's deployment name).
        """

    @abstractmethod
    def delete_entry(self, model_asset_id: str) -> dict:
        """Remove one entry; returns what was removed. Raises NotFound."""

    def entry(self, model_asset_id: str) -> dict:
        """One entry by model asset id; NotFound when there is none."""
        document = self.metadata()
        if model_asset_id not in document:
            raise NotFound(f"no metadata entry for model asset id {model_asset_id!r}", field="--model-asset-id")
        return document[model_asset_id]

    def deployment_name_holder(self, deployment_name: str, *, other_than: str | None = None) -> str | None:
        """The key of an entry (other than ``other_than``) whose deployment name is this one, if any."""
        for key, entry in self.metadata().items():
            if key != other_than and deployment_name_of(entry) == deployment_name:
                return key
        return None

    def entry_for_deployment(self, deployment_name: str) -> tuple[str, dict]:
        """The (model asset id, entry) of a deployment: the single entry with that name.

        When entries written before names were unique share it, the one that says it runs the deployment
        wins; NotFound when no entry has the name, Conflict when that leaves more than one.
        """
        named = [(key, entry) for key, entry in self.metadata().items() if deployment_name_of(entry) == deployment_name]
        if len(named) > 1:
            named = [(key, entry) for key, entry in named if runs_deployment(entry)] or named
        if not named:
            raise NotFound(f"no metadata entry has deployment name {deployment_name!r}", field="--name")
        if len(named) > 1:
            keys = ", ".join(key for key, _ in named)
            raise Conflict(
                f"{len(named)} metadata entries have deployment name {deployment_name!r} ({keys}); "
                "delete the stale ones with 'config delete --model-asset-id'",
                field="--name",
            )
        return named[0]
