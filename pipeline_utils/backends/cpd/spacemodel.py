"""Fetch a deployment's model from the WML deployment space when its EDI kernel starts (stdlib only).

The cpd deploy target copies this file into a package whose model stays in the space (as
``mlops_space_model.py``), and the package's entry script calls :func:`fetch_model` before the kernel file runs.
It runs in the cluster's kernel environment, where this project is not installed: hence urllib, ssl, json,
hashlib and zipfile only, and syntax older Pythons read.

What it reads from the kernel's environment: the model (``WML_SPACE_ID``, ``WML_SPACE_MODEL`` = asset id,
``WML_SPACE_MODEL_VERSION``, ``WML_SPACE_MODEL_NAME``, ``WML_SPACE_MODEL_SHA256``, ``WML_SPACE_MODEL_KIND``) and the
cluster (``CPD_URL``, ``CPD_CA_PEM`` = the cluster's CA as PEM text, ``CPD_VERIFY``) from ``model.json``'s
``mk_environments``; the credentials (``CPD_USERNAME`` + ``CPD_API_KEY``, or ``USER_ACCESS_TOKEN``) from the
profile's ``kernel.envs``, where custom args go.

How it finds the version: each version of a space asset is one attachment of its CAMS data asset, and the cpd
space records each attachment's sha256 in its ``user_data``; the attachment holding the pinned sha256 is the
version (an asset the original CLI stored has one attachment and no sha256 there: that one is taken). Its
content comes from the attachment's ``url`` (signed; the bearer token goes only to the cluster itself) and must
match the sha256 before it appears.

How it writes: into a temporary name next to ``model/``, renamed into place in one step, so a kernel killed
mid-download leaves no half model and kernels starting together on the shared package folder do not clash (the
first rename wins; the others drop their copy). A folder-kind asset (a zip the space made of a folder) is
unpacked into ``model/``; a file is kept whole as ``model/<asset name>``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import ssl
import tempfile
import time
import zipfile
from collections.abc import Mapping
from http.client import HTTPException
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urljoin, urlsplit
from urllib.request import HTTPRedirectHandler, HTTPSHandler, Request, build_opener

SPACE, ASSET, VERSION, NAME = "WML_SPACE_ID", "WML_SPACE_MODEL", "WML_SPACE_MODEL_VERSION", "WML_SPACE_MODEL_NAME"
SHA256, KIND = "WML_SPACE_MODEL_SHA256", "WML_SPACE_MODEL_KIND"
CLUSTER_URL, CA_PEM, VERIFY = "CPD_URL", "CPD_CA_PEM", "CPD_VERIFY"
USERNAME, API_KEY, ACCESS_TOKEN = "CPD_USERNAME", "CPD_API_KEY", "USER_ACCESS_TOKEN"
MODEL_ENVIRONMENTS = (SPACE, ASSET, VERSION, NAME, SHA256, KIND)
"""The ``mk_environments`` naming a model that stays in the space."""
FOLDER = "folder"
TEMP_PREFIX = ".mlops-model-"
STALE_TEMP_S = 24 * 3600
CHUNK = 1 << 20
TIMEOUT_S = 120.0


class SpaceModelError(RuntimeError):
    """The model could not be fetched: one line naming the space, the asset and the URL (never a secret)."""


def _plain(url: str) -> str:
    """A URL without its query (a signed URL's signature stays out of messages)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _same_origin(url: str, other: str) -> bool:
    first, second = urlsplit(url), urlsplit(other)
    return (first.scheme, first.netloc) == (second.scheme, second.netloc)


class _Redirects(HTTPRedirectHandler):
    """Follow redirects, but never carry the bearer token to another host."""

    def redirect_request(self, req: Request, fp, code: int, msg: str, headers, newurl: str) -> Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and not _same_origin(req.full_url, new.full_url):
            new.remove_header("Authorization")
        return new


def tls_context(environ: Mapping[str, str]) -> ssl.SSLContext:
    """The system's CAs plus the cluster's (``CPD_CA_PEM``), or no verification when ``CPD_VERIFY`` is false."""
    if (environ.get(VERIFY) or "").strip().lower() in ("0", "false", "no", "off"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    context = ssl.create_default_context()
    if environ.get(CA_PEM):
        context.load_verify_locations(cadata=environ[CA_PEM])
    return context


class _Cluster:
    """Plain HTTPS calls to the cluster with a bearer token; errors name the method and URL, never the token."""

    def __init__(self, url: str, context: ssl.SSLContext, what: str) -> None:
        self.url, self.what, self.token = url.rstrip("/"), what, ""
        self.opener = build_opener(HTTPSHandler(context=context), _Redirects())

    def fail(self, method: str, url: str, problem: str) -> SpaceModelError:
        """The one-line error of a call that failed."""
        return SpaceModelError(" ".join(f"cannot fetch {self.what}: {method} {_plain(url)}: {problem}".split()))

    def open(self, method: str, path_or_url: str, body: dict | None = None):
        """The response to one call (a context manager); ``path_or_url`` is relative to the cluster or absolute."""
        url = urljoin(self.url + "/", path_or_url)
        headers = {"Accept": "application/json"}
        if self.token and _same_origin(url, self.url):
            headers["Authorization"] = "Bearer " + self.token
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        try:
            return self.opener.open(Request(url, data=data, headers=headers, method=method), timeout=TIMEOUT_S)
        except HTTPError as exc:
            raise self.fail(method, url, f"{exc.code} {_error_text(exc)}") from None
        except (URLError, OSError) as exc:
            raise self.fail(method, url, f"cannot be reached: {getattr(exc, 'reason', exc)}") from None

    def json(self, method: str, path: str, body: dict | None = None) -> dict:
        """The JSON object a call answers."""
        with self.open(method, path, body) as response:
            url, raw = response.geturl(), response.read()
        try:
            answer = json.loads(raw)
        except ValueError:
            raise self.fail(method, url, "the answer is not JSON") from None
        if not isinstance(answer, dict):
            raise self.fail(method, url, "the answer is not a JSON object")
        return answer


def _error_text(exc: HTTPError) -> str:
    """The service's message of an error answer (``errors[0].message`` or ``message``), else the reason."""
    try:
        answer = json.loads(exc.read() or b"{}")
        errors = answer.get("errors") or [{}]
        return str(errors[0].get("message") or answer.get("message") or exc.reason)[:300]
    except (ValueError, AttributeError, OSError):
        return str(exc.reason)


def _authenticate(cluster: _Cluster, environ: Mapping[str, str]) -> None:
    """A bearer token: ``USER_ACCESS_TOKEN``, else one from ``/icp4d-api/v1/authorize`` with the user's API key."""
    token = (environ.get(ACCESS_TOKEN) or "").strip()
    if not token:
        username, api_key = (environ.get(USERNAME) or "").strip(), (environ.get(API_KEY) or "").strip()
        if not (username and api_key):
            raise SpaceModelError(f"cannot fetch {cluster.what}: give the kernel {USERNAME} and {API_KEY} (or "
                                  f"{ACCESS_TOKEN}) as custom args")
        answer = cluster.json("POST", "/icp4d-api/v1/authorize", {"username": username, "api_key": api_key})
        token = str(answer.get("token") or "")
        if not token:
            raise cluster.fail("POST", cluster.url + "/icp4d-api/v1/authorize", "the answer holds no token")
    cluster.token = token


def _attachment(details: dict, sha256: str) -> dict | None:
    """The complete attachment holding ``sha256`` (per its ``user_data``), else the first one recording none."""
    complete = [a for a in details.get("attachments") or []
                if a.get("complete", True) and a.get("transfer_complete", True)]
    for attachment in complete:
        if (attachment.get("user_data") or {}).get("sha256") == sha256:
            return attachment
    return next((a for a in complete if not (a.get("user_data") or {}).get("sha256")), None)


def _download(cluster: _Cluster, url: str, target: str, sha256: str) -> None:
    """Stream ``url`` into ``target``, checking the content against ``sha256``."""
    digest, full_url = hashlib.sha256(), urljoin(cluster.url + "/", url)
    with cluster.open("GET", url) as response, open(target, "wb") as out:
        while True:
            try:
                chunk = response.read(CHUNK)
            except (OSError, HTTPException) as exc:
                raise cluster.fail("GET", full_url, f"the download broke off: {type(exc).__name__}") from None
            if not chunk:
                break
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != sha256:
        raise cluster.fail("GET", full_url, "the content does not match its sha256 (corrupted or changed); no model "
                           "was written")


def _unpacks(kind: str, name: str, path: str) -> bool:
    """Whether the asset is a folder to unpack (as ``place_model`` decides): folder kind, or before kinds were
    recorded a ``*.zip``."""
    return kind == FOLDER or (not kind and name.endswith(".zip") and zipfile.is_zipfile(path))


def _unzip(archive: str, dest: str, what: str) -> None:
    """Extract ``archive`` into ``dest``, refusing members that would leave it."""
    root = os.path.realpath(dest)
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            target = os.path.realpath(os.path.join(root, member))
            if target != root and not target.startswith(root + os.sep):
                raise SpaceModelError(f"cannot fetch {what}: member {member!r} leaves the model folder")
        zf.extractall(root)


def _remove_stale(parent: str) -> None:
    """Drop temporary copies a killed kernel left, once they are a day old (a live download is younger)."""
    for name in os.listdir(parent):
        path = os.path.join(parent, name)
        try:
            if name.startswith(TEMP_PREFIX) and time.time() - os.path.getmtime(path) > STALE_TEMP_S:
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        except OSError:
            continue


def fetch_model(dest: str, environ: Mapping[str, str] | None = None) -> bool:
    """Put the pinned model version into ``dest`` unless it is there already; True when this call placed it.

    Raises :class:`SpaceModelError` (one line, no secret) when a setting is missing or the model cannot be fetched.
    """
    environ = os.environ if environ is None else environ
    if os.path.isdir(dest):
        return False
    missing = [n for n in (SPACE, ASSET, NAME, SHA256, CLUSTER_URL) if not (environ.get(n) or "").strip()]
    if missing:
        raise SpaceModelError(f"cannot fetch the model from the WML space: {', '.join(missing)} not set")
    space, asset, name, sha256 = (environ[n].strip() for n in (SPACE, ASSET, NAME, SHA256))
    kind = (environ.get(KIND) or "").strip()
    what = f"the model {name} (asset {asset} v{environ.get(VERSION, '?')}) from the WML space {space}"
    if name in ("", ".", "..") or os.path.basename(name) != name:
        raise SpaceModelError(f"cannot fetch {what}: {name!r} is not a file name")
    cluster = _Cluster(environ[CLUSTER_URL].strip(), tls_context(environ), what)
    _authenticate(cluster, environ)
    space_query = "?space_id=" + quote(space, safe="")
    asset_path = f"/v2/assets/{quote(asset, safe='')}"
    attachment = _attachment(cluster.json("GET", asset_path + space_query), sha256)
    if attachment is None:
        raise cluster.fail("GET", cluster.url + asset_path, f"no attachment holds the version of sha256 {sha256}")
    attachment_path = f"{asset_path}/attachments/{quote(str(attachment.get('id')), safe='')}"
    content_url = str(cluster.json("GET", attachment_path + space_query).get("url") or "")
    if not content_url:
        raise cluster.fail("GET", cluster.url + attachment_path, "the attachment has no download url")

    try:
        return _place(cluster, content_url, dest, sha256, kind, name)
    except OSError as exc:
        raise SpaceModelError(f"cannot fetch {what}: cannot write it under {os.path.dirname(dest)}: "
                              f"{exc.strerror or exc}") from None


def _place(cluster: _Cluster, url: str, dest: str, sha256: str, kind: str, name: str) -> bool:
    """Download into a temporary name next to ``dest``, check, unpack, and rename into place (first one wins)."""
    parent = os.path.dirname(os.path.abspath(dest))
    _remove_stale(parent)
    handle, download = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".part", dir=parent)
    os.close(handle)
    staging = ""
    try:
        staging = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=parent)
        _download(cluster, url, download, sha256)
        if _unpacks(kind, name, download):
            _unzip(download, staging, cluster.what)
        else:
            os.replace(download, os.path.join(staging, name))
        os.chmod(staging, 0o755)
        try:
            os.rename(staging, dest)
        except OSError:
            if not os.path.isdir(dest):
                raise
            return False
        return True
    finally:
        if os.path.exists(download):
            os.remove(download)
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
