"""CPD storage volumes over the zen-volumes REST API: the volumes interface on a Cloud Pak for Data cluster.

The calls (the ones the original flow's ``storage_volume_utils`` made, and ``ibm_watsonx_ai.volumes`` names):

- ``GET /zen-data/v3/service_instances?addon_type=volumes``: the volumes (``service_instances[].display_name``);
- ``GET /zen-volumes/{volume}/v1/volumes/directories/{path}?include_details=true&recursive=false``: a folder's
  entries (``responseObject.directoryContents[]``: ``path``, ``type``, ``content_length``, ``last_modified``);
- ``GET`` / ``PUT /zen-volumes/{volume}/v1/volumes/files/{path}``: download, upload (multipart ``upFile``; the
  file server creates the parent folders).

Paths are checked with :func:`~pipeline_utils.volumes.clean_path` before any request and sent quoted whole
(``a%2Fb.png``; the root is ``%2F``), as the original did. The API has no rename and no folder call that we could
confirm, which shapes :meth:`CpdVolumes.write_bytes` and :meth:`CpdVolumes.mkdir` (see there). Volumes are not
mounted on this machine: :meth:`~pipeline_utils.volumes.StorageVolumes.local_path` stays None.
"""

from __future__ import annotations

import email.utils
import posixpath
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from pipeline_utils.backends.cpd.concern import CpdConcern
from pipeline_utils.backends.cpd.http import CpdService
from pipeline_utils.backends.cpd.settings import CpdSettings
from pipeline_utils.errors import BadInput, NotFound
from pipeline_utils.volumes import FileInfo, StorageVolumes, check_volume_name, clean_path, join

SERVICE = "CPD storage volumes"
INSTANCES_PATH = "/zen-data/v3/service_instances"
VOLUME_ADDON = "volumes"
FOLDER_MARKER = ".keep"
LISTING_PARAMS = {"include_details": "true", "recursive": "false"}


class CpdVolumes(CpdConcern, StorageVolumes):
    """The cluster's storage volumes, by display name, through one :class:`CpdService` (token, TLS, typed errors).

    Every method blocks until the file server answered. A 404 is told apart (unknown volume, or missing path) by
    listing the volumes, on the failure path only; a path the file server refuses (400: a link out of the volume,
    a folder where a file is expected) is a BadInput naming ``path``.
    """

    def __init__(self, settings: CpdSettings) -> None:
        self.settings = settings
        self.service = CpdService(settings, SERVICE, settings.url)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> CpdVolumes:
        """The volumes of the cluster ``$CPD_URL`` names."""
        return cls(CpdSettings.from_environment(environ))

    def diagnose(self) -> str:
        """List the volumes (read-only)."""
        names = self.list_volumes()
        return f"{len(names)} storage volumes at {self.service.url(INSTANCES_PATH)}: {', '.join(names) or 'none'}"

    def list_volumes(self) -> list[str]:
        answer = self.service.json("GET", INSTANCES_PATH, params={"addon_type": VOLUME_ADDON}) or {}
        instances = (answer.get("service_instances") or []) if isinstance(answer, dict) else []
        return sorted({str(item["display_name"]) for item in instances if _is_volume(item)})

    def create_volume(self, volume: str) -> None:
        """Leave an existing volume as it is; refuse to create one (BadInput naming ``volume_display_name``).

        The API could create one (``POST /zen-data/v3/service_instances`` and starting its file server), but it
        needs the cluster's namespace, a storage class and a size, which are the cluster administrator's choice,
        not the pipeline's: volumes are created in the CPD console (Administration > Storage volumes).
        """
        name = check_volume_name(volume)
        if name not in self.list_volumes():
            raise BadInput(
                f"storage volume {name!r} does not exist at {self.settings.url}; create it in the CPD console "
                "(Administration > Storage volumes) and give your user access to it",
                field="volume_display_name",
            )

    def exists(self, volume: str, path: str = "") -> bool:
        relative = clean_path(path)
        try:
            self.stat(volume, relative)
        except NotFound:
            return False
        return True

    def list(self, volume: str, path: str = "") -> list[FileInfo]:
        return self._entries(volume, clean_path(path)) or []

    def stat(self, volume: str, path: str) -> FileInfo:
        """Size and mtime from the parent folder's listing (the API has no call for one entry); the root has
        mtime 0."""
        relative = clean_path(path)
        if not relative:
            self._require_volume(volume)
            return FileInfo("", 0, 0.0, True)
        parent, name = posixpath.split(relative)
        for entry in self._entries(volume, parent) or []:
            if entry.name == name:
                return entry
        raise NotFound(f"{relative!r} not found on volume {volume!r}", field="path")

    def read_bytes(self, volume: str, path: str) -> bytes:
        relative = clean_path(path)
        if not relative:
            self._require_volume(volume)
            raise NotFound(f"no file {relative!r} on volume {volume!r}: the volume's root is a folder", field="path")
        url = self._url(volume, "files", relative)
        try:
            return self.service.request("GET", url).content
        except NotFound as exc:
            self._require_volume(volume)
            raise NotFound(f"no file {relative!r} on volume {volume!r} ({exc})", field="path") from None
        except BadInput as exc:
            if self._is_folder(volume, relative):
                raise NotFound(f"no file {relative!r} on volume {volume!r}: it is a folder", field="path") from None
            raise _refused(relative, exc) from None

    def write_bytes(self, volume: str, path: str, data: bytes) -> FileInfo:
        """Upload one file (its folders are created by the file server); replaces an existing file.

        Atomic only as far as the file server makes one upload atomic: the zen-volumes API has no rename, so the
        client cannot upload under a temporary name and swap it in.
        """
        relative = clean_path(path)
        if not relative:
            raise BadInput("a file path is needed, not the volume root", field="path")
        url, upload = self._url(volume, "files", relative), {"upFile": (posixpath.basename(relative), data)}
        try:
            self.service.request("PUT", url, files=upload)
        except NotFound as exc:
            self._require_volume(volume)
            raise NotFound(f"{relative!r} cannot be written on volume {volume!r} ({exc})", field="path") from None
        except BadInput as exc:
            raise _refused(relative, exc) from None
        return self.stat(volume, relative)

    def mkdir(self, volume: str, path: str) -> FileInfo:
        """Create folder ``path`` with its parents; idempotent.

        The API creates folders only as the parents of an upload (no folder call could be confirmed), so a new
        folder gets an empty ``.keep`` file, which its listing shows.
        """
        relative = clean_path(path)
        try:
            found = self.stat(volume, relative)
        except NotFound as exc:
            if exc.field != "path":
                raise
            self.write_bytes(volume, join(relative, FOLDER_MARKER), b"")
            return self.stat(volume, relative)
        if not found.is_dir:
            raise BadInput(f"{relative!r} is a file on volume {volume!r}, not a folder", field="path")
        return found

    def _url(self, volume: str, kind: str, relative: str) -> str:
        """The API path of ``relative`` on ``volume``: both quoted whole, the root as ``/``."""
        name = quote(check_volume_name(volume), safe="")
        return f"/zen-volumes/{name}/v1/volumes/{kind}/{quote(relative or '/', safe='')}"

    def _entries(self, volume: str, folder: str) -> list[FileInfo] | None:
        """The entries of ``folder``, sorted by name; None when it does not exist (NotFound for an unknown volume)."""
        url = self._url(volume, "directories", folder)
        try:
            answer = self.service.json("GET", url, params=LISTING_PARAMS)
        except NotFound:
            self._require_volume(volume)
            return None
        except BadInput as exc:
            raise _refused(folder, exc) from None
        response = (answer or {}).get("responseObject") if isinstance(answer, dict) else None
        contents = (response or {}).get("directoryContents") or []
        entries = [_file_info(folder, item) for item in contents if isinstance(item, dict)]
        return sorted((entry for entry in entries if entry.name), key=lambda entry: entry.name)

    def _is_folder(self, volume: str, relative: str) -> bool:
        try:
            return self.stat(volume, relative).is_dir
        except NotFound:
            return False

    def _require_volume(self, volume: str) -> None:
        """NotFound naming ``volume_display_name`` unless the cluster has the volume."""
        if check_volume_name(volume) not in self.list_volumes():
            raise NotFound(
                f"unknown volume {volume!r} (not among the storage volumes at {self.service.url(INSTANCES_PATH)})",
                field="volume_display_name",
            )


def _is_volume(item: object) -> bool:
    """Whether a ``service_instances`` item is a storage volume with a display name."""
    if not isinstance(item, dict):
        return False
    return bool(item.get("display_name")) and item.get("addon_type", VOLUME_ADDON) == VOLUME_ADDON


def _refused(relative: str, exc: BadInput) -> BadInput:
    """The file server's refusal of a path (a link out of the volume, a folder in the way) as a BadInput on ``path``."""
    return BadInput(f"{relative!r} refused by {exc}", field="path")


def _file_info(folder: str, item: dict[str, Any]) -> FileInfo:
    """One ``directoryContents`` entry as a FileInfo whose path starts at the volume root."""
    name = posixpath.basename(str(item.get("path") or "").rstrip("/"))
    if name in (".", ".."):
        name = ""
    is_dir = str(item.get("type", "")).lower() == "directory"
    try:
        size = 0 if is_dir else int(item.get("content_length") or 0)
    except (TypeError, ValueError):
        size = 0
    return FileInfo(join(folder, name) if name else "", size, _mtime(item.get("last_modified")), is_dir)


def _mtime(value: object) -> float:
    """``last_modified`` as epoch seconds: an HTTP date (``Mon, 02 Jan 2023 10:00:00 GMT``) or epoch (ms) numbers."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) / 1000 if value > 1e11 else float(value)
    try:
        return email.utils.parsedate_to_datetime(str(value)).timestamp()
    except (TypeError, ValueError, IndexError):
        return 0.0
