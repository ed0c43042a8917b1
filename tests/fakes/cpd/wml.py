"""The fake WML deployment space: what ``ibm_watsonx_ai.APIClient`` and the cpd space call on CPD 5.x.

The WML version (``GET /ml/wml_services/v2/version``, the SDK's CPD detection), the deployment space
(``GET /v2/spaces/{id}``), CAMS data assets (create, get, delete, search with attachments), their attachments
(create with a signed upload URL, mark complete, get with a signed download URL, delete) and the asset files API
behind those URLs (``/v2/asset_files/{path}``: ``PUT`` multipart, ``GET`` a file or a folder's listing, ``HEAD``,
``DELETE``).

Semantics follow the documented service, not what a client would like: data assets have no revision check and
search answers whatever exists; ``PUT /v2/asset_files/{path}?override=false`` refuses (409) to replace a file
that exists, checked and written in one step, which is the one atomic primitive the space offers. Faults:
``space.conflict`` (a count) answers the next ``override=false`` writes with 409 as if another writer had won,
``space.tamper`` (a count) flips a byte of the next attachment downloads. Contents are kept in memory only.
"""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import datetime, timezone

from . import SPACE_ID
from .auth import check
from .core import Request, Response, Router, State, error

WML_VERSION = "5.2.0"
FILES_PREFIX = "/v2/asset_files/"


def _stamp() -> tuple[int, str]:
    """Now as CAMS writes it: epoch milliseconds and ISO 8601 UTC."""
    millis = int(time.time() * 1000)
    iso = datetime.fromtimestamp(millis / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return millis, iso


def multipart_file(request: Request) -> bytes | None:
    """The content of the ``file`` part of a multipart/form-data body (None when there is none)."""
    content_type = request.headers.get("content-type", "")
    if "boundary=" not in content_type:
        return None
    boundary = content_type.split("boundary=", 1)[1].split(";")[0].strip().strip('"').encode()
    for part in request.body.split(b"--" + boundary):
        head, separator, payload = part.partition(b"\r\n\r\n")
        if separator and b'name="file"' in head:
            return payload[:-2] if payload.endswith(b"\r\n") else payload
    return None


class WmlState:
    """Spaces, data assets and asset files, under the fake's one lock."""

    def __init__(self, state: State) -> None:
        self.state = state
        data = state.service("wml")
        self.spaces: dict[str, dict] = data.setdefault("spaces", {SPACE_ID: {"name": "fake deployment space"}})
        self.assets: dict[str, dict] = data.setdefault("assets", {})
        self.files: dict[tuple[str, str], dict] = data.setdefault("files", {})
        self.signatures: dict[tuple[str, str], str] = data.setdefault("signatures", {})

    def sign(self, space_id: str, path: str) -> str:
        """A signature that grants access to one file (what a signed URL carries)."""
        return self.signatures.setdefault((space_id, path), secrets.token_urlsafe(16))

    def write(self, space_id: str, path: str, data: bytes) -> None:
        millis, iso = _stamp()
        self.files[(space_id, path)] = {"data": data, "modified": iso, "etag": f'W/"{len(data):x}-{millis:x}"'}

    def listing(self, space_id: str, folder: str) -> list[dict] | None:
        """The entries directly under ``folder`` (None when no file is under it)."""
        prefix = folder.rstrip("/") + "/"
        entries: dict[str, dict] = {}
        for (space, path), record in self.files.items():
            if space != space_id or not path.startswith(prefix):
                continue
            name, _, rest = path[len(prefix):].partition("/")
            if rest:
                entries.setdefault(name, {"path": prefix + name, "type": "directory"})
            else:
                entries[name] = {
                    "path": path, "etag": record["etag"], "size": len(record["data"]),
                    "last_modifed": record["modified"], "type": "file", "mime_type": "application/octet-stream",
                }
        return list(entries.values()) or None

    def asset_answer(self, asset: dict, *, with_attachments: bool = True) -> dict:
        answer = {"metadata": dict(asset["metadata"]), "entity": asset["entity"], "href": asset["href"]}
        if with_attachments:
            answer["attachments"] = [dict(a) for a in asset["attachments"]]
        return answer


def register(router: Router, state: State) -> None:
    """The WML version, space, data asset, attachment and asset file routes."""
    wml = WmlState(state)

    def space_of(request: Request) -> tuple[str | None, Response | None]:
        space_id = request.arg("space_id")
        if not space_id:
            return None, error(400, "Missing one of catalog_id, project_id or space_id", "missing_required_parameter")
        if space_id not in wml.spaces:
            return None, error(404, f"Space {space_id} was not found", "does_not_exist")
        return space_id, None

    def asset_of(request: Request) -> tuple[dict | None, Response | None]:
        space_id, problem = space_of(request)
        if problem:
            return None, problem
        asset = wml.assets.get(request.params["asset_id"])
        if asset is None or asset["space_id"] != space_id:
            return None, error(404, f"Asset {request.params['asset_id']} was not found", "does_not_exist")
        return asset, None

    @router.route("GET", "/ml/wml_services/v2/version", auth=False)
    def version(request: Request) -> dict:
        return {"version": WML_VERSION, "platform": "cpd"}

    @router.route("GET", "/v2/spaces/{space_id}")
    def get_space(request: Request) -> Response | dict:
        space = wml.spaces.get(request.params["space_id"])
        if space is None:
            return error(404, f"Space {request.params['space_id']} was not found", "does_not_exist")
        space_id = request.params["space_id"]
        return {
            "entity": {"name": space["name"], "description": "", "stage": {"production": False},
                       "status": {"state": "active"}, "type": "cpd"},
            "metadata": {"id": space_id, "url": f"/v2/spaces/{space_id}", "created_at": "2026-01-01T00:00:00.000Z",
                         "creator_id": "1000330999"},
        }

    @router.route("POST", "/v2/assets")
    def create_asset(request: Request) -> Response:
        space_id, problem = space_of(request)
        if problem:
            return problem
        body = request.json() or {}
        metadata = body.get("metadata") or {}
        if not metadata.get("name") or metadata.get("asset_type") != "data_asset":
            return error(400, "metadata.name and metadata.asset_type data_asset are required", "invalid_parameter")
        asset_id = str(uuid.uuid4())
        millis, iso = _stamp()
        user = (request.token or {}).get("uid", "1000330999")
        record = {
            "space_id": space_id,
            "href": f"/v2/assets/{asset_id}?space_id={space_id}",
            "metadata": {
                "rov": {"mode": 0, "collaborator_ids": {}},
                "space_id": space_id,
                "usage": {"last_updated_at": iso, "last_updater_id": user, "last_update_time": millis,
                          "last_accessed_at": iso, "last_access_time": millis, "last_accessor_id": user,
                          "access_count": 0},
                "name": metadata["name"],
                "description": metadata.get("description", ""),
                "tags": list(metadata.get("tags") or []),
                "asset_type": "data_asset",
                "origin_country": metadata.get("origin_country", "us"),
                "rating": 0.0,
                "total_ratings": 0,
                "catalog_id": None,
                "created": millis,
                "created_at": iso,
                "owner_id": user,
                "size": 0,
                "version": 2.0,
                "asset_state": "available",
                "asset_attributes": ["data_asset"],
                "asset_id": asset_id,
                "asset_category": metadata.get("asset_category", "USER"),
                "creator_id": user,
            },
            "entity": body.get("entity") or {"data_asset": {"mime_type": "application/octet-stream"}},
            "attachments": [],
        }
        with state.lock:
            wml.assets[asset_id] = record
        answer = wml.asset_answer(record, with_attachments=False)
        answer["asset_id"] = asset_id
        return Response(201, answer)

    @router.route("GET", "/v2/assets/{asset_id}")
    def get_asset(request: Request) -> Response | dict:
        with state.lock:
            asset, problem = asset_of(request)
            return problem or wml.asset_answer(asset)

    @router.route("DELETE", "/v2/assets/{asset_id}")
    def delete_asset(request: Request) -> Response:
        with state.lock:
            asset, problem = asset_of(request)
            if problem:
                return problem
            del wml.assets[asset["metadata"]["asset_id"]]
            for attachment in asset["attachments"]:
                wml.files.pop((asset["space_id"], attachment["object_key"]), None)
        return Response(204)

    @router.route("POST", "/v2/asset_types/data_asset/search")
    def search(request: Request) -> Response | dict:
        space_id, problem = space_of(request)
        if problem:
            return problem
        body = request.json() or {}
        query = str(body.get("query") or "*:*")
        include = str(body.get("include") or "")
        wanted = None
        if query.startswith("asset.name:"):
            wanted = query.split(":", 1)[1].strip().strip('"')
        elif query != "*:*":
            return error(400, f"Unsupported query {query!r} (the fake knows *:* and asset.name:)", "invalid_query")
        with state.lock:
            found = [
                wml.asset_answer(asset, with_attachments="attachments" in include)
                for asset in wml.assets.values()
                if asset["space_id"] == space_id and wanted in (None, asset["metadata"]["name"])
            ]
        if "entity" not in include:
            for answer in found:
                answer.pop("entity", None)
        return {"total_rows": len(found), "results": found}

    @router.route("POST", "/v2/assets/{asset_id}/attachments")
    def create_attachment(request: Request) -> Response:
        body = request.json() or {}
        if not body.get("name"):
            return error(400, "name is required", "invalid_parameter")
        with state.lock:
            asset, problem = asset_of(request)
            if problem:
                return problem
            attachment_id = str(uuid.uuid4())
            stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in body["name"])
            object_key = f"data_asset/{stem}_{secrets.token_hex(6)}"
            millis, _ = _stamp()
            attachment = {
                "id": attachment_id, "version": 2.0, "asset_type": body.get("asset_type", "data_asset"),
                "name": body["name"], "description": body.get("description", ""),
                "mime": body.get("mime", "application/octet-stream"), "object_key": object_key,
                "object_key_is_read_only": False, "is_managed": True, "is_referenced": False,
                "is_partitioned": False, "complete": False, "transfer_complete": False, "size": 0,
                "user_data": dict(body.get("user_data") or {}), "creator_id": (request.token or {}).get("uid"),
                "create_time": millis, "datasource_type": "81bafdbd-b7c6-45c5-a4fd-6ec135f66f4e",
            }
            asset["attachments"].append(attachment)
            signature = wml.sign(asset["space_id"], object_key)
        url = f"{FILES_PREFIX}{object_key}?space_id={asset['space_id']}&signature={signature}"
        return Response(201, {
            "attachment_id": attachment_id, "asset_type": attachment["asset_type"], "is_partitioned": False,
            "name": attachment["name"], "mime": attachment["mime"], "url1": url, "user_data": attachment["user_data"],
            "href": f"/v2/assets/{asset['metadata']['asset_id']}/attachments/{attachment_id}"
                    f"?space_id={asset['space_id']}",
        })

    def attachment_of(request: Request) -> tuple[dict | None, dict | None, Response | None]:
        asset, problem = asset_of(request)
        if problem:
            return None, None, problem
        for attachment in asset["attachments"]:
            if attachment["id"] == request.params["attachment_id"]:
                return asset, attachment, None
        return None, None, error(404, f"Attachment {request.params['attachment_id']} was not found", "does_not_exist")

    @router.route("POST", "/v2/assets/{asset_id}/attachments/{attachment_id}/complete")
    def complete(request: Request) -> Response | dict:
        with state.lock:
            asset, attachment, problem = attachment_of(request)
            if problem:
                return problem
            stored = wml.files.get((asset["space_id"], attachment["object_key"]))
            if stored is None:
                return error(400, "The attachment has no uploaded content", "transfer_incomplete")
            attachment.update(complete=True, transfer_complete=True, size=len(stored["data"]))
            millis, iso = _stamp()
            asset["metadata"]["size"] = sum(a["size"] for a in asset["attachments"] if a["complete"])
            asset["metadata"]["usage"].update(last_updated_at=iso, last_update_time=millis)
            return {"attachment_id": attachment["id"], "transfer_complete": True, "size": attachment["size"]}

    @router.route("GET", "/v2/assets/{asset_id}/attachments/{attachment_id}")
    def get_attachment(request: Request) -> Response | dict:
        with state.lock:
            asset, attachment, problem = attachment_of(request)
            if problem:
                return problem
            signature = wml.sign(asset["space_id"], attachment["object_key"])
        return {
            "attachment_id": attachment["id"], "asset_type": attachment["asset_type"], "name": attachment["name"],
            "mime": attachment["mime"], "object_key": attachment["object_key"], "size": attachment["size"],
            "transfer_complete": attachment["transfer_complete"], "user_data": attachment["user_data"],
            "created_at": asset["metadata"]["created_at"],
            "url": f"{FILES_PREFIX}{attachment['object_key']}?space_id={asset['space_id']}&signature={signature}",
            "href": f"/v2/assets/{asset['metadata']['asset_id']}/attachments/{attachment['id']}"
                    f"?space_id={asset['space_id']}",
        }

    @router.route("DELETE", "/v2/assets/{asset_id}/attachments/{attachment_id}")
    def delete_attachment(request: Request) -> Response:
        with state.lock:
            asset, attachment, problem = attachment_of(request)
            if problem:
                return problem
            asset["attachments"].remove(attachment)
            wml.files.pop((asset["space_id"], attachment["object_key"]), None)
        return Response(204)

    def file_access(request: Request) -> tuple[str | None, Response | None]:
        """The space of an asset files request, authorized by its signature or a bearer token."""
        path = request.params["path"]
        space_id = request.arg("space_id")
        signature = request.arg("signature")
        if signature and space_id and wml.signatures.get((space_id, path)) == signature:
            return space_id, None
        refused = check(state, request)
        if refused:
            return None, refused
        return space_of(request)

    @router.route("PUT", FILES_PREFIX + "{path:path}", auth=False)
    def put_file(request: Request) -> Response:
        space_id, problem = file_access(request)
        if problem:
            return problem
        path = request.params["path"]
        data = multipart_file(request)
        if data is None:
            return error(400, "Expected a multipart/form-data body with a 'file' part", "invalid_body")
        exclusive = (request.arg("override") or "true").lower() == "false"
        with state.lock:
            if exclusive and ((space_id, path) in wml.files or state.take_fault("space.conflict")):
                return error(409, f"File {path} already exists and override is false", "already_exists")
            wml.write(space_id, path, data)
        return Response(201, {"status": "Asset created: The asset was successfully uploaded."})

    def read_file(request: Request) -> Response:
        space_id, problem = file_access(request)
        if problem:
            return problem
        path = request.params["path"]
        with state.lock:
            record = wml.files.get((space_id, path))
            listing = None if record else wml.listing(space_id, path)
            tamper = bool(record) and path.startswith("data_asset/") and bool(state.take_fault("space.tamper"))
        if record:
            data = record["data"]
            if tamper and data:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            return Response(200, data, {"ETag": record["etag"], "Content-Type": "application/octet-stream"})
        if listing is not None:
            return Response(200, {"resources": listing})
        return error(404, f"File {path} was not found", "does_not_exist")

    router.route("GET", FILES_PREFIX + "{path:path}", auth=False)(read_file)
    router.route("HEAD", FILES_PREFIX + "{path:path}", auth=False)(read_file)

    @router.route("DELETE", FILES_PREFIX + "{path:path}", auth=False)
    def delete_file(request: Request) -> Response:
        space_id, problem = file_access(request)
        if problem:
            return problem
        with state.lock:
            if wml.files.pop((space_id, request.params["path"]), None) is None:
                return error(404, f"File {request.params['path']} was not found", "does_not_exist")
        return Response(204)

