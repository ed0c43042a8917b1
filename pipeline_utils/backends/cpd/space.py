"""The cpd deployment space: assets and the metadata document in a WML deployment space (CAMS data assets).

What is kept where, in the space:

- Each asset is a CAMS **data asset**; each of its versions is one **attachment** of it, so a new version keeps
  the asset's id (the original CLI made a new asset and deleted the old one, changing the id).
- ``mlops/assets/<n>.json`` (asset files, the space's own storage, not listed as assets): the **catalog**, one
  record per asset this backend stored: name, our asset type, and per version the attachment, size, sha256, kind
  and time. It is what makes names unique and version numbers gap-free under concurrent writers. Data assets that
  are not in it (made by the original CLI or in the UI) still list and download: version 1, sha256 and kind None.
- ``mlops/deployment_metadata/<n>.json``: the **metadata document**, entries keyed by model asset id.
- The data asset ``deployment_metadata.yml``: the document as YAML, as the original CLI wrote and reads it; a
  copy refreshed after each write (its description says which revision), or, when the original CLI wrote it, the
  document itself (below).

How the catalog and the metadata document are written (numbered revision files, committed by compare-and-set
with ``override=false``, so that no write is lost under concurrent writers) is in
:mod:`pipeline_utils.backends.cpd.revisions`.

The original CLI's document: when a ``deployment_metadata.yml`` without our revision mark is newer than the one the
latest revision adopted (or no revision exists), it is the document: the CLI rewrote it after us. The next write
starts from it, records it as adopted, and replaces it with the refreshed copy (the original CLI, too, deleted the
older same-named assets when it rewrote the document).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import mimetypes
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import yaml

from pipeline_utils.backends.cpd.revisions import AssetFiles, Revision, RevisionLog
from pipeline_utils.backends.cpd.settings import CpdSettings
from pipeline_utils.backends.cpd.wml import SERVICE, cams_service, sdk_errors, wml_client
from pipeline_utils.config.metadata import DRAFT_KEY, dump_yaml
from pipeline_utils.config.settings import mlops_home
from pipeline_utils.errors import BadInput, Conflict, NotFound, PipelineError, Unavailable
from pipeline_utils.space.base import FILE, METADATA_FILENAME, Asset, AssetVersion, Space, name_clash
from pipeline_utils.timeutil import now_iso, to_iso

CATALOG_FOLDER = "mlops/assets"
METADATA_FOLDER = "mlops/deployment_metadata"
ASSET_MARK = "Stored by mlops; versions and checksums are in the space's mlops/assets catalog"
MIRROR_MARK = "mlops metadata revision "
LEGACY_ASSET_TYPE = "data_asset"
CHUNK = 1 << 20
_SCRATCH = re.compile(r"^(\d+)-[0-9a-f]{32}-")
_FOREIGN_SCRATCH_AGE = 24 * 3600

log = logging.getLogger(__name__)


def _order_key(metadata: Mapping) -> tuple:
    """How CAMS orders assets in time: creation (epoch ms, else the ISO time), then id."""
    asset_id = metadata.get("asset_id") or metadata.get("guid") or ""
    return (metadata.get("created") or 0, str(metadata.get("created_at") or ""), str(asset_id))


def _iso(value: Any) -> str:
    """A CAMS time (``2026-01-02T03:04:05Z``) in this project's convention; kept as it is when it does not parse."""
    try:
        return to_iso(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except ValueError:
        return str(value or "")


def _asset_id(details: Mapping) -> str:
    metadata = details["metadata"]
    return str(metadata.get("asset_id") or metadata.get("guid"))


def _complete_attachments(details: Mapping) -> list[dict]:
    return [a for a in details.get("attachments") or [] if a.get("complete", True) and a.get("transfer_complete", True)]


def _split(url: str) -> tuple[str, dict[str, str]]:
    """A (relative or absolute) URL as path and query parameters, so that error messages leave the query out."""
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.scheme else parts.path
    return base, dict(parse_qsl(parts.query, keep_blank_values=True))


class CpdSpace(Space):
    """A WML deployment space on Cloud Pak for Data, through ibm-watsonx-ai and the CAMS REST API."""

    def __init__(self, settings: CpdSettings, scratch: Path) -> None:
        self.settings = settings
        self.space_id = settings.require_space_id()
        self.scratch = scratch
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.rest = cams_service(settings)
        self.files = AssetFiles(self.rest, self.space_id)
        self.catalog = RevisionLog(self.files, CATALOG_FOLDER)
        self.metadata_log = RevisionLog(self.files, METADATA_FOLDER)
        self._remove_stale_scratch()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> CpdSpace:
        """The space ``$WML_SPACE_ID`` of the cluster ``$CPD_URL``; scratch files under ``$MLOPS_HOME/cpd-scratch``."""
        settings = CpdSettings.from_environment(environ)
        settings.require_space_id()
        return cls(settings, mlops_home(environ) / "cpd-scratch")

    def diagnose(self) -> str:
        """Authenticate, find the space, count its assets."""
        client = wml_client(self.settings)
        with sdk_errors(self.settings, "get space"):
            name = client.spaces.get_details(self.space_id)["entity"].get("name")
        return f"space {self.space_id} ({name}): {len(self.list_assets())} assets"

    # -- scratch files -------------------------------------------------------------------------------------------

    def _remove_stale_scratch(self) -> None:
        """Remove scratch files whose writing process is gone (and unmarked ones older than a day)."""
        import psutil

        for path in self.scratch.iterdir():
            match = _SCRATCH.match(path.name)
            try:
                stale = (not psutil.pid_exists(int(match.group(1))) if match
                         else time.time() - path.stat().st_mtime > _FOREIGN_SCRATCH_AGE)
                if stale:
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
            except OSError:
                continue

    def scratch_path(self, name: str) -> Path:
        """A fresh path in the local scratch folder, marked with this process's id."""
        return self.scratch / f"{os.getpid()}-{uuid.uuid4().hex}-{name}"

    # -- reading assets ------------------------------------------------------------------------------------------

    def _data_assets(self) -> list[dict]:
        """Every data asset of the space with its attachments (the SDK's search, all pages)."""
        client = wml_client(self.settings)
        with sdk_errors(self.settings, "list data assets"):
            return client.data_assets.get_details(get_all=True)["resources"]

    def _catalog(self) -> dict[str, dict]:
        return self.catalog.head().document.get("assets") or {}

    @staticmethod
    def _registered(asset_id: str, record: Mapping, with_versions: bool = True) -> Asset:
        history = tuple(
            AssetVersion(v["version"], v["size"], v["sha256"], v["created_at"], v.get("kind"))
            for v in record["versions"]
        )
        latest = history[-1]
        return Asset(
            id=asset_id, name=record["name"], asset_type=record["asset_type"], size=latest.size, sha256=latest.sha256,
            version=latest.version, created_at=record["created_at"], updated_at=record["updated_at"],
            kind=latest.kind, versions=history if with_versions else (),
        )

    @staticmethod
    def _legacy(details: Mapping, with_versions: bool = True) -> Asset | None:
        """A data asset stored without the catalog: version 1, checksum and kind unknown (None when it has no
        complete attachment to download)."""
        attachments = _complete_attachments(details)
        if not attachments:
            return None
        metadata = details["metadata"]
        created = _iso(metadata.get("created_at"))
        size = int(attachments[0].get("size") or metadata.get("size") or 0)
        only = AssetVersion(1, size, None, created, None)
        return Asset(
            id=_asset_id(details), name=metadata["name"], asset_type=LEGACY_ASSET_TYPE, size=size, sha256=None,
            version=1, created_at=created, updated_at=_iso(metadata.get("last_updated_at") or created), kind=None,
            versions=(only,) if with_versions else (),
        )

    def _view(self, with_versions: bool = False) -> list[Asset]:
        """The assets users see, oldest first: the catalog's, then the other data assets (not our metadata
        document, not uploads of ours that never reached the catalog)."""
        catalog = self._catalog()
        found = [(record["created_at"], self._registered(asset_id, record, with_versions))
                 for asset_id, record in catalog.items()]
        for details in self._data_assets():
            metadata = details["metadata"]
            if (_asset_id(details) in catalog or metadata.get("name") == METADATA_FILENAME
                    or str(metadata.get("description") or "").startswith(ASSET_MARK)):
                continue
            legacy = self._legacy(details, with_versions)
            if legacy:
                found.append((legacy.created_at, legacy))
        return [asset for _, asset in sorted(found, key=lambda pair: pair[0])]

    def list_assets(self) -> list[Asset]:
        return self._view()

    def assets_named(self, name: str) -> list[Asset]:
        return [asset for asset in self._view() if asset.name == name]

    def get_asset(self, id_or_name: str) -> Asset:
        record = self._catalog().get(id_or_name)
        if record:
            return self._registered(id_or_name, record)
        assets = self._view(with_versions=True)
        for asset in assets:
            if asset.id == id_or_name:
                return asset
        named = [asset for asset in assets if asset.name == id_or_name]
        if not named:
            raise NotFound(f"no asset with id or name {id_or_name!r} in the space {self.space_id}")
        if len(named) > 1:
            ids = ", ".join(asset.id for asset in named)
            raise Conflict(f"{len(named)} assets are named {id_or_name!r}; name one by id ({ids})")
        return named[0]

    # -- writing assets ------------------------------------------------------------------------------------------

    def _create_data_asset(self, name: str, description: str) -> dict:
        """A new, empty data asset (its metadata as CAMS answers it)."""
        body = {
            "metadata": {"name": name, "description": description, "asset_type": "data_asset",
                         "origin_country": "us", "asset_category": "USER"},
            "entity": {"data_asset": {"mime_type": mimetypes.guess_type(name)[0] or "application/octet-stream"}},
        }
        answer = self.rest.json("POST", "/v2/assets", params={"space_id": self.space_id, "duplicate_action": "IGNORE"},
                                json=body)
        return answer["metadata"]

    def _attach(self, asset_id: str, name: str, content: Path | bytes, user_data: dict) -> str:
        """Upload ``content`` as a new attachment of the asset and mark it complete; its id."""
        attachments = f"/v2/assets/{asset_id}/attachments"
        params = {"space_id": self.space_id}
        meta = {"asset_type": "data_asset", "name": name, "user_data": user_data,
                "mime": mimetypes.guess_type(name)[0] or "application/octet-stream"}
        answer = self.rest.json("POST", attachments, params=params, json=meta)
        attachment_id = answer["attachment_id"]
        try:
            path, query = _split(answer["url1"])
            if isinstance(content, bytes):
                self.rest.request("PUT", path, params=query, files={"file": (name, content, "file")})
            else:
                with open(content, "rb") as handle:
                    self.rest.request("PUT", path, params=query, files={"file": (name, handle, "file")})
            self.rest.request("POST", f"{attachments}/{attachment_id}/complete", params=params)
        except BaseException:
            self._forget_attachment(asset_id, attachment_id)
            raise
        return attachment_id

    def _forget_attachment(self, asset_id: str, attachment_id: str) -> None:
        self.rest.request("DELETE", f"/v2/assets/{asset_id}/attachments/{attachment_id}",
                          params={"space_id": self.space_id}, ok=(404,))

    def _forget_asset(self, asset_id: str) -> None:
        self.rest.request("DELETE", f"/v2/assets/{asset_id}", params={"space_id": self.space_id,
                                                                      "purge_on_delete": "true"}, ok=(404,))

    def _asset_details(self, asset_id: str) -> dict | None:
        response = self.rest.request("GET", f"/v2/assets/{asset_id}", params={"space_id": self.space_id},
                                     ok=(404,))
        return None if response.status_code == 404 else response.json()

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
        source = Path(source)
        if not source.is_file():
            raise BadInput(f"{source}: not a file")
        try:
            with open(source, "rb") as handle:
                sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
            size = source.stat().st_size
            version = {"size": size, "sha256": sha256, "kind": kind}
            if replace_id is None:
                return self._add_new(source, name, asset_type, version, same_name_ok)
            return self._add_version(source, name, replace_id, version)
        finally:
            if source.parent == self.scratch:
                source.unlink(missing_ok=True)

    def _add_new(self, source: Path, name: str, asset_type: str, version: dict, same_name_ok: bool) -> Asset:
        if not same_name_ok:
            self._refuse_taken_name(name, self._view())
        created = self._create_data_asset(name, ASSET_MARK)
        asset_id = created["asset_id"]
        try:
            attachment_id = self._attach(asset_id, name, source, {"mlops_version": 1, "sha256": version["sha256"]})
            stamp = now_iso()

            def register(head: Revision) -> dict:
                assets = head.document.get("assets") or {}
                if not same_name_ok:
                    self._refuse_taken_name(name, [self._registered(i, r, False) for i, r in assets.items()])
                assets[asset_id] = {
                    "name": name, "asset_type": asset_type, "created_at": _iso(created.get("created_at") or stamp),
                    "updated_at": stamp,
                    "versions": [{"version": 1, "attachment_id": attachment_id, "created_at": stamp, **version}],
                }
                return {"document": {"assets": assets}}

            committed = self.catalog.update(register)
        except BaseException:
            self._forget_asset(asset_id)
            raise
        return self._registered(asset_id, committed.document["assets"][asset_id])

    @staticmethod
    def _refuse_taken_name(name: str, assets: list[Asset]) -> None:
        taken = next((asset for asset in assets if asset.name == name), None)
        if taken:
            raise Conflict(f"asset {name!r} already exists in the space (id {taken.id})")

    def _add_version(self, source: Path, name: str, replace_id: str, version: dict) -> Asset:
        legacy = None
        if replace_id not in self._catalog():
            details = self._asset_details(replace_id)
            legacy = self._legacy(details) if details else None
            if legacy is None:
                raise NotFound(f"no asset with id {replace_id!r} to overwrite in the space {self.space_id}")
            legacy_attachment = _complete_attachments(details)[0]["id"]
        attachment_id = self._attach(replace_id, name, source, {"sha256": version["sha256"]})
        stamp = now_iso()

        def add(head: Revision) -> dict:
            assets = head.document.get("assets") or {}
            record = assets.get(replace_id)
            if record is None and legacy is not None:
                first = legacy.versions[0]
                record = {
                    "name": legacy.name, "asset_type": legacy.asset_type, "created_at": legacy.created_at,
                    "updated_at": legacy.updated_at,
                    "versions": [{"version": 1, "attachment_id": legacy_attachment, "size": first.size,
                                  "sha256": None, "kind": None, "created_at": first.created_at}],
                }
            if record is None:
                raise NotFound(f"no asset with id {replace_id!r} to overwrite (deleted meanwhile)")
            number = record["versions"][-1]["version"] + 1
            record["versions"].append({"version": number, "attachment_id": attachment_id, "created_at": stamp,
                                       **version})
            record["updated_at"] = stamp
            assets[replace_id] = record
            return {"document": {"assets": assets}}

        try:
            committed = self.catalog.update(add)
        except BaseException:
            self._forget_attachment(replace_id, attachment_id)
            raise
        return self._registered(replace_id, committed.document["assets"][replace_id])

    def delete_asset_version(self, asset_id: str, version: int) -> None:
        removed: dict[str, Any] = {}

        def drop(head: Revision) -> dict | None:
            removed.clear()
            assets = head.document.get("assets") or {}
            record = assets.get(asset_id)
            gone = [v for v in (record or {}).get("versions", []) if v["version"] == version]
            if not gone:
                return None
            removed.update(gone[0])
            record["versions"] = [v for v in record["versions"] if v["version"] != version]
            if record["versions"]:
                record["updated_at"] = record["versions"][-1]["created_at"]
            else:
                del assets[asset_id]
                removed["asset"] = True
            return {"document": {"assets": assets}}

        self.catalog.update(drop)
        if removed.get("asset"):
            self._forget_asset(asset_id)
        elif removed:
            self._forget_attachment(asset_id, removed["attachment_id"])
        elif version == 1 and asset_id not in self._catalog():
            details = self._asset_details(asset_id)
            if details and not str(details["metadata"].get("description") or "").startswith(ASSET_MARK):
                self._forget_asset(asset_id)

    def delete_asset(self, id_or_name: str) -> Asset:
        asset = self.get_asset(id_or_name)

        def drop(head: Revision) -> dict | None:
            assets = head.document.get("assets") or {}
            if assets.pop(asset.id, None) is None:
                return None
            return {"document": {"assets": assets}}

        self.catalog.update(drop)
        self._forget_asset(asset.id)
        return asset

    def download_asset(self, id_or_name: str, dest: Path, *, version: int | None = None) -> Path:
        asset = self.get_asset(id_or_name)
        chosen = asset.at_version(version)
        record = self._catalog().get(asset.id)
        if record:
            attachment_id = next(v["attachment_id"] for v in record["versions"] if v["version"] == chosen.version)
        else:
            details = self._asset_details(asset.id)
            attachments = _complete_attachments(details) if details else []
            if not attachments:
                raise NotFound(f"asset {asset.name!r} ({asset.id}) is gone from the space {self.space_id}")
            attachment_id = attachments[0]["id"]
        dest = Path(dest)
        target = dest / asset.name if dest.is_dir() else dest
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        try:
            url = self._download(asset.id, attachment_id, partial)
            if chosen.sha256 is not None and self._sha256(partial) != chosen.sha256:
                raise Unavailable(
                    f"{SERVICE}: the content of {asset.name!r} v{chosen.version} ({asset.id}) downloaded from {url} "
                    "does not match its sha256 (corrupted); nothing was written"
                )
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return target

    @staticmethod
    def _sha256(path: Path) -> str:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()

    def _download(self, asset_id: str, attachment_id: str, target: Path) -> str:
        """Stream one attachment's content into ``target``; the URL it came from (without its signature)."""
        answer = self.rest.json("GET", f"/v2/assets/{asset_id}/attachments/{attachment_id}",
                                params={"space_id": self.space_id})
        path, query = _split(answer["url"])
        url = self.rest.url(path)
        headers = {"Authorization": f"Bearer {self.rest.tokens.token()}"}
        try:
            with self.rest.client.stream("GET", url, params=query, headers=headers) as response:
                if not response.is_success:
                    response.read()
                    raise self.rest.error("GET", url, response)
                with open(target, "wb") as out:
                    for chunk in response.iter_bytes(CHUNK):
                        out.write(chunk)
        except httpx.HTTPError as exc:
            raise Unavailable(f"{SERVICE} at {url} cannot be reached: {type(exc).__name__}: {exc}") from None
        return url

    # -- the metadata document -----------------------------------------------------------------------------------

    def _documents(self) -> tuple[list[dict], list[dict]]:
        """The ``deployment_metadata.yml`` data assets: (our refreshed copies, the original CLI's), oldest first."""
        named = sorted((d for d in self._data_assets() if d["metadata"].get("name") == METADATA_FILENAME),
                       key=lambda d: _order_key(d["metadata"]))
        ours = [d for d in named if str(d["metadata"].get("description") or "").startswith(MIRROR_MARK)]
        return ours, [d for d in named if d not in ours]

    @staticmethod
    def _newer(legacy: Mapping | None, adopted: Mapping | None) -> bool:
        """Whether the original CLI's document ``legacy`` came after the one the revisions adopted."""
        if legacy is None:
            return False
        return adopted is None or _order_key(legacy["metadata"]) > tuple(adopted["key"])

    def _legacy_document(self, details: Mapping) -> dict:
        """The content of a ``deployment_metadata.yml`` the original CLI wrote: YAML, entries keyed by asset id."""
        client = wml_client(self.settings)
        with sdk_errors(self.settings, f"download {METADATA_FILENAME}"):
            content = client.data_assets.get_content(_asset_id(details))
        try:
            document = yaml.safe_load(content) or {}
        except yaml.YAMLError as exc:
            raise Unavailable(f"{SERVICE}: {METADATA_FILENAME} ({_asset_id(details)}) is not YAML: {exc}") from None
        if not isinstance(document, dict):
            raise Unavailable(f"{SERVICE}: {METADATA_FILENAME} ({_asset_id(details)}) is not a mapping of entries")
        return {str(key): value for key, value in document.items()}

    def _base(self, head: Revision, legacy: dict | None, legacy_document: Callable[[], dict]) -> tuple[dict, Any]:
        """The document a write starts from, and what it adopted from the original CLI."""
        adopted = (head.record or {}).get("adopted")
        if self._newer(legacy, adopted):
            return legacy_document(), {"id": _asset_id(legacy), "key": list(_order_key(legacy["metadata"]))}
        return head.document, adopted

    def metadata(self) -> dict[str, dict]:
        """The entries, oldest first (the original CLI's ``MODEL_ASSET_ID`` template entry left out)."""
        head = self.metadata_log.head()
        _, legacy = self._documents()
        document, _ = self._base(head, legacy[-1] if legacy else None, lambda: self._legacy_document(legacy[-1]))
        return {key: value for key, value in document.items() if key != DRAFT_KEY}

    def _write_metadata(self, change: Callable[[dict], dict]) -> None:
        """Commit ``change(visible entries) -> visible entries`` as the next revision, then refresh the YAML copy."""
        _, legacy_docs = self._documents()
        legacy = legacy_docs[-1] if legacy_docs else None
        cache: dict[str, dict] = {}

        def legacy_document() -> dict:
            if "document" not in cache:
                cache["document"] = self._legacy_document(legacy)
            return copy.deepcopy(cache["document"])

        def commit(head: Revision) -> dict:
            document, adopted = self._base(head, legacy, legacy_document)
            template = {DRAFT_KEY: document[DRAFT_KEY]} if DRAFT_KEY in document else {}
            visible = {key: value for key, value in document.items() if key != DRAFT_KEY}
            return {"adopted": adopted, "document": {**template, **change(visible)}}

        committed = self.metadata_log.update(commit)
        self._refresh_copy(committed)

    def _refresh_copy(self, committed: Revision) -> None:
        """Replace the space's ``deployment_metadata.yml`` by this revision's YAML (best effort: a failure leaves
        an older copy, which the next write replaces; readers of this backend never read the copy)."""
        try:
            ours, legacy = self._documents()
            newest = max((int(d["metadata"]["description"][len(MIRROR_MARK):] or 0) for d in ours), default=0)
            if newest >= committed.number:
                return
            created = self._create_data_asset(METADATA_FILENAME, f"{MIRROR_MARK}{committed.number}")
            self._attach(created["asset_id"], METADATA_FILENAME, dump_yaml(committed.document).encode(), {})
            adopted = committed.record.get("adopted")
            for details in legacy:
                if not self._newer(details, adopted):
                    self._forget_asset(_asset_id(details))
            for details in ours:
                self._forget_asset(_asset_id(details))
        except (PipelineError, ValueError, KeyError) as exc:
            log.warning("the space's %s could not be refreshed to revision %s (%s); the next write refreshes it",
                        METADATA_FILENAME, committed.number, exc)

    def put_entries(self, entries: dict[str, dict], *, overwrite: bool = False) -> None:
        def change(document: dict) -> dict:
            if not overwrite:
                taken = next((key for key in entries if key in document), None)
                if taken is not None:
                    raise Conflict(f"metadata entry {taken!r} already exists; use -f to overwrite")
            clash = name_clash(document, entries)
            if clash:
                raise clash
            document.update(copy.deepcopy(entries))
            return document

        self._write_metadata(change)

    def update_entry(self, model_asset_id: str, change: Callable[[dict], dict], *, create: bool = False) -> dict:
        result: dict[str, dict] = {}

        def apply(document: dict) -> dict:
            if model_asset_id not in document and not create:
                raise NotFound(f"no metadata entry for model asset id {model_asset_id!r}", field="--model-asset-id")
            entry = change(copy.deepcopy(document.get(model_asset_id) or {}))
            clash = name_clash(document, {model_asset_id: entry})
            if clash:
                raise clash
            document[model_asset_id] = entry
            result["entry"] = entry
            return document

        self._write_metadata(apply)
        return result["entry"]

    def delete_entry(self, model_asset_id: str) -> dict:
        result: dict[str, dict] = {}

        def drop(document: dict) -> dict:
            if model_asset_id not in document:
                raise NotFound(f"unknown model asset id {model_asset_id!r}", field="--model-asset-id")
            result["entry"] = document.pop(model_asset_id)
            return document

        self._write_metadata(drop)
        return result["entry"]
