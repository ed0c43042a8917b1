"""The fake CPD's plumbing: requests, responses, a router, shared state and fault switches.

Each service of the fake (auth, space, EDI, volumes, training, OpenScale) is a module of this package with a
``register(router, state)`` function; :mod:`.server` finds them all. Handlers get a :class:`Request` and return
a :class:`Response` (or a JSON-ready value, sent as 200). Everything runs in one process, so handlers share
:class:`State` under its lock.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

JSON = "application/json"


@dataclass
class Request:
    """One request as a handler sees it; ``params`` are the route pattern's named groups."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    token: dict[str, Any] | None = None

    def json(self) -> Any:
        """The body parsed as JSON (None when empty)."""
        return json.loads(self.body) if self.body else None

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of query argument ``name``."""
        return (self.query.get(name) or [default])[0]


@dataclass
class Response:
    """What a handler answers: a status, a body (bytes, str, or a JSON-ready value) and headers."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, str]:
        """The body as bytes and its content type."""
        if isinstance(self.body, bytes):
            return self.body, self.headers.get("Content-Type", "application/octet-stream")
        if isinstance(self.body, str):
            return self.body.encode(), self.headers.get("Content-Type", "text/plain; charset=utf-8")
        if self.body is None and self.status == 204:
            return b"", JSON
        return json.dumps(self.body).encode(), JSON


def error(status: int, message: str, code: str = "error") -> Response:
    """An error answer shaped like the CPD services' (``errors[0].message`` plus a top-level ``message``)."""
    return Response(status, {"trace": "fake", "errors": [{"code": code, "message": message}], "message": message})


Handler = Callable[[Request], Any]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    auth: bool


class Router:
    """Routes by method and path pattern (``{name}`` matches one path segment, ``{name:path}`` the rest)."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(self, method: str, template: str, *, auth: bool = True) -> Callable[[Handler], Handler]:
        """Register a handler; ``auth`` routes need a valid bearer token (checked by the auth module's hook)."""

        def add(handler: Handler) -> Handler:
            regex = re.sub(r"\{(\w+):path\}", r"(?P<\1>.+)", template)
            regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)
            self.routes.append(Route(method.upper(), re.compile(f"^{regex}$"), handler, auth))
            return handler

        return add

    def find(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """The route for a request, its params, and whether the path exists under another method."""
        path_known = False
        for route in self.routes:
            match = route.pattern.match(path)
            if match:
                path_known = True
                if route.method == method:
                    return route, match.groupdict(), True
        return None, {}, path_known


class State:
    """Everything the fake remembers, per service (``state.service("edi")`` is a dict), plus faults and a log.

    Faults are switches a test sets through ``POST /fake/faults`` (see :mod:`.control`), read by handlers with
    :meth:`fault`; ``log`` records every request's method and path, for tests to assert what a client called.
    """

    def __init__(self, options: dict[str, Any]) -> None:
        self.lock = threading.RLock()
        self.options = options
        self.services: dict[str, dict[str, Any]] = {}
        self.faults: dict[str, Any] = {}
        self.log: list[dict[str, Any]] = []

    def service(self, name: str) -> dict[str, Any]:
        """The state dict of one service (created empty)."""
        with self.lock:
            return self.services.setdefault(name, {})

    def fault(self, name: str, default: Any = None) -> Any:
        """A fault switch's value (None when unset)."""
        with self.lock:
            return self.faults.get(name, default)

    def take_fault(self, name: str) -> Any:
        """A one-shot fault: its value, counted down (removed when it reaches zero), or None when unset."""
        with self.lock:
            value = self.faults.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                if value <= 1:
                    self.faults.pop(name, None)
                else:
                    self.faults[name] = value - 1
            return value


def form_parts(request: Request) -> dict[str, tuple[str | None, bytes]]:
    """The parts of a ``multipart/form-data`` body by field name: (file name, content); {} for other bodies."""
    content_type = request.headers.get("content-type", "")
    boundary = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/form-data") or boundary is None:
        return {}
    parts: dict[str, tuple[str | None, bytes]] = {}
    for chunk in request.body.split(b"--" + boundary.group(1).encode())[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        disposition = head.decode("utf-8", "replace")
        name = re.search(r'\bname="([^"]*)"', disposition)
        filename = re.search(r'\bfilename="([^"]*)"', disposition)
        if name:
            parts[name.group(1)] = (filename.group(1) if filename else None, content.removesuffix(b"\r\n"))
    return parts


def split_url(raw: str) -> tuple[str, dict[str, list[str]]]:
    """A request target's path and parsed query."""
    parts = urlsplit(raw)
    return parts.path, parse_qs(parts.query, keep_blank_values=True)
