"""A client of Ray's dashboard REST API: Serve's declarative config (GET/PUT) and package uploads, with token auth.

Only plain HTTP (httpx): the base requirements never import ray. The token is sent as ``Authorization: Bearer``
and appears in no message, repr or log line.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from pipeline_utils.errors import BadInput, Conflict, NotFound, PipelineError, Unavailable

APPLICATIONS = "/api/serve/applications/"
PACKAGES = "/api/packages/gcs/"
DEFAULT_DASHBOARD = "http://127.0.0.1:8265"
DASHBOARD_ENV = "MLOPS_RAY_DASHBOARD_URL"
ADDRESS_ENV = "RAY_ADDRESS"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
MESSAGE_LIMIT = 300


def dashboard_url(environ: Mapping[str, str]) -> tuple[str, str]:
    """The dashboard's base URL and the variable that gave it: ``$MLOPS_RAY_DASHBOARD_URL``, else an http(s)
    ``$RAY_ADDRESS``, else the local head's default."""
    for variable in (DASHBOARD_ENV, ADDRESS_ENV):
        value = (environ.get(variable) or "").strip()
        if not value:
            continue
        if not value.startswith(("http://", "https://")):
            raise BadInput(
                f"{value!r} is not the dashboard's http(s) URL (the REST API, e.g. http://HEAD:8265); set "
                f"{DASHBOARD_ENV} to it",
                field=variable,
            )
        return value.rstrip("/"), variable
    return DEFAULT_DASHBOARD, DASHBOARD_ENV


def auth_token(environ: Mapping[str, str]) -> str | None:
    """The cluster's auth token, as Ray finds it: ``$RAY_AUTH_TOKEN``, the file ``$RAY_AUTH_TOKEN_PATH``, else
    ``~/.ray/auth_token`` when it exists; None when there is none."""
    token = (environ.get(TOKEN_ENV) or "").strip()
    if token:
        return token
    configured = (environ.get(TOKEN_PATH_ENV) or "").strip()
    home = environ.get("HOME")
    path = Path(configured).expanduser() if configured else (Path(home) / ".ray" / "auth_token" if home else None)
    if path is None or not path.is_file():
        if configured:
            raise BadInput(f"token file {configured} does not exist", field=TOKEN_PATH_ENV)
        return None
    try:
        return path.read_text().strip() or None
    except OSError as exc:
        raise BadInput(f"token file {path} cannot be read: {exc.strerror}", field=TOKEN_PATH_ENV) from None


def one_line(text: str, secret: str | None = None) -> str:
    """A response text on one short line, with ``secret`` (the token) masked should a server echo it."""
    line = " ".join(text.split())
    if secret:
        line = line.replace(secret, "***")
    return line[:MESSAGE_LIMIT] + ("..." if len(line) > MESSAGE_LIMIT else "")


class RayRestClient:
    """Talks to one cluster's dashboard at ``base_url`` (``http://HEAD:8265``), with ``token`` when it has one."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"RayRestClient({self.base_url!r}, token={'set' if self._token else 'none'})"

    def headers(self) -> dict[str, str]:
        """The Authorization header when a token is configured."""
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request to the dashboard; a failure is a one-line typed error naming the URL, never the token."""
        url = f"{self.base_url}{path}"
        try:
            response = httpx.request(method, url, headers=self.headers(), timeout=self.timeout, **kwargs)
        except httpx.HTTPError as exc:
            raise Unavailable(f"the Ray dashboard at {self.base_url} cannot be reached ({type(exc).__name__}: "
                              f"{one_line(str(exc), self._token)}); is the cluster up with its dashboard?") from None
        if response.status_code in (401, 403):
            advice = (
                "the token was refused" if self._token else f"no token was sent: set {TOKEN_ENV} or {TOKEN_PATH_ENV}"
            )
            raise Unavailable(
                f"the Ray dashboard at {self.base_url} answered HTTP {response.status_code} to {method} {path} "
                f"({advice})"
            )
        if response.status_code >= 400:
            error = {400: BadInput, 404: NotFound, 409: Conflict}.get(response.status_code, Unavailable)
            raise error(
                f"the Ray dashboard answered HTTP {response.status_code} to {method} {path}: "
                f"{one_line(response.text, self._token)}"
            )
        return response

    def serve_details(self) -> dict[str, Any]:
        """GET ``/api/serve/applications/``: Serve's instance details (every application with its status)."""
        response = self.request("GET", APPLICATIONS)
        try:
            details = response.json()
        except ValueError:
            raise PipelineError(f"the Ray dashboard answered GET {APPLICATIONS} with no JSON") from None
        if not isinstance(details, dict) or not isinstance(details.get("applications", {}), dict):
            raise PipelineError(f"the Ray dashboard answered GET {APPLICATIONS} with an unexpected document")
        return details

    def put_applications(self, config: dict[str, Any]) -> None:
        """PUT ``/api/serve/applications/``: the whole declarative config (it replaces every application)."""
        self.request("PUT", APPLICATIONS, json=config)

    def package_exists(self, package: str) -> bool:
        """Whether ``gcs://<package>`` is already in the cluster (GET answers 404 when not)."""
        try:
            self.request("GET", f"{PACKAGES}{package}")
        except NotFound:
            return False
        return True

    def upload_package(self, package: str, data: bytes) -> None:
        """PUT the zip ``data`` as ``gcs://<package>`` (a ``_ray_pkg_<hash>.zip`` name)."""
        self.request("PUT", f"{PACKAGES}{package}", content=data)

    def actor_log(self, actor_id: str, suffix: str, lines: int) -> list[str]:
        """The last ``lines`` lines of an actor's ``out`` or ``err`` log (the state API's ``/api/v0/logs/file``)."""
        params: dict[str, str | int] = {"actor_id": actor_id, "suffix": suffix, "lines": lines}
        return self.request("GET", "/api/v0/logs/file", params=params).text.splitlines()
