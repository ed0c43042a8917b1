"""The fake CPD storage volumes: the zen-data volume listing and the zen-volumes file server.

A volume is a folder ``<state_dir>/volumes/<display name>`` (the server's option ``volumes`` lists the ones made
at start; a test may add folders, as an administrator adds volumes in the console). Paths arrive quoted whole
(``a%2Fb.png``, the root as ``%2F``); the server itself refuses any that leaves its volume, ``..`` or a link
(400), and never lists such links. Answers are shaped as documented: ``service_instances[]`` for the listing,
``responseObject.directoryContents[]`` for folders, multipart ``upFile`` for uploads.
"""

from __future__ import annotations

import email.utils
import io
import os
import re
import tempfile
import uuid
import zipfile
from pathlib import Path
from urllib.parse import unquote

from .core import Request, Response, Router, State, error, form_parts

BASE = "/zen-volumes/{volume}/v1/volumes"
VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def volumes_root(state: State) -> Path:
    """The folder holding one folder per volume."""
    return Path(state.options["state_dir"]) / "volumes"


def resolve(state: State, volume: str, raw_path: str) -> tuple[Path, str] | Response:
    """The file a quoted volume path names, and the path as sent; a 404 for an unknown volume, a 400 for a path
    that leaves the volume (``..`` or a link)."""
    name = unquote(volume)
    folder = volumes_root(state) / name
    if not VOLUME_NAME.match(name) or not folder.is_dir():
        return error(404, f"Volume {name} not found", "volume_not_found")
    relative = unquote(raw_path)
    parts = [part for part in relative.replace("\\", "/").split("/") if part not in ("", ".")]
    base = os.path.realpath(folder)
    target = os.path.realpath(os.path.join(base, *parts))
    if ".." in parts or os.path.commonpath((base, target)) != base:
        return error(400, f"The path {relative!r} leaves the volume {name}", "invalid_path")
    return Path(target), "/".join(parts)


def _entry(path: Path, shown: str) -> dict:
    stat = path.stat()
    is_dir = path.is_dir()
    return {
        "path": shown,
        "type": "directory" if is_dir else "file",
        "content_length": 0 if is_dir else stat.st_size,
        "last_modified": email.utils.formatdate(stat.st_mtime, usegmt=True),
        "file_extension": "" if is_dir else path.suffix,
    }


def _inside(base: str, path: Path) -> bool:
    return os.path.commonpath((base, os.path.realpath(path))) == base


def _zip(folder: Path) -> bytes:
    buffer = io.BytesIO()
    base = os.path.realpath(folder)
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and _inside(base, path):
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _attachment(filename: str, content_type: str) -> dict[str, str]:
    return {"Content-Type": content_type, "Content-Disposition": f"attachment; filename={filename}"}


def _write_atomically(target: Path, data: bytes) -> None:
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".upload")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temporary, target)


def register(router: Router, state: State) -> None:
    """The volume listing and the file server routes."""
    volumes_root(state).mkdir(parents=True, exist_ok=True)
    for name in state.options.get("volumes", []):
        (volumes_root(state) / name).mkdir(exist_ok=True)

    @router.route("GET", "/zen-data/v3/service_instances")
    def instances(request: Request) -> dict:
        addon = request.arg("addon_type")
        names = sorted(p.name for p in volumes_root(state).iterdir() if p.is_dir() and VOLUME_NAME.match(p.name))
        items = [
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"volume/{name}")),
                "display_name": name,
                "addon_type": "volumes",
                "addon_version": "-",
                "provision_status": "PROVISIONED",
                "metadata": {"storageClass": "fake-nfs", "storageSize": "10Gi"},
            }
            for name in names
            if addon in (None, "volumes")
        ]
        return {"service_instances": items, "total_count": len(items)}

    @router.route("GET", BASE + "/directories/{path:path}")
    def directory(request: Request) -> Response | dict:
        found = resolve(state, request.params["volume"], request.params["path"])
        if isinstance(found, Response):
            return found
        folder, shown = found
        if not folder.is_dir():
            return error(404, f"Directory {shown!r} not found", "not_found")
        base = os.path.realpath(volumes_root(state) / unquote(request.params["volume"]))
        recursive = request.arg("recursive", "false") == "true"
        paths = sorted(folder.rglob("*") if recursive else folder.iterdir())
        contents = [
            _entry(path, path.relative_to(folder).as_posix())
            for path in paths
            if _inside(base, path) and path.exists()
        ]
        return {"_messageCode_": "success", "message": "Success", "responseObject": {"directoryContents": contents}}

    @router.route("GET", BASE + "/files/{path:path}")
    def download(request: Request) -> Response:
        found = resolve(state, request.params["volume"], request.params["path"])
        if isinstance(found, Response):
            return found
        target, shown = found
        if target.is_dir():
            if request.arg("compress") != "zip":
                return error(400, f"{shown!r} is a directory; download directories with compress=zip", "is_directory")
            return Response(200, _zip(target), _attachment(f"{target.name}.zip", "application/zip"))
        if not target.is_file():
            return error(404, f"File {shown!r} not found", "not_found")
        return Response(200, target.read_bytes(), _attachment(target.name, "application/octet-stream"))

    @router.route("PUT", BASE + "/files/{path:path}")
    def upload(request: Request) -> Response:
        found = resolve(state, request.params["volume"], request.params["path"])
        if isinstance(found, Response):
            return found
        target, shown = found
        part = form_parts(request).get("upFile")
        if part is None:
            return error(400, "The upload needs a multipart field 'upFile'", "missing_file")
        if not shown or target.is_dir():
            return error(400, f"{shown!r} is a directory", "is_directory")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            return error(400, f"A parent of {shown!r} is a file, not a directory", "not_a_directory")
        _write_atomically(target, part[1])
        return Response(200, {"_messageCode_": "success", "message": f"Successfully uploaded {shown}"})
