"""A small HTTP/1.1 server on asyncio and httptools: keep-alive, TCP_NODELAY, body limits.

The application is an object with ``async handle(request) -> Response`` and
``body_limit(path) -> int``; bodies above the limit are discarded and answered 413.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections import deque
from http import HTTPStatus
from typing import Any, Protocol

import httptools

from pipeline_utils.errors import PipelineError

JSON = "application/json"
REASONS = {s.value: s.phrase for s in HTTPStatus}


class Request:
    """A parsed request: method, path, query string, lower-cased headers, body bytes."""

    __slots__ = ("method", "path", "query", "headers", "body")

    def __init__(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        """The body parsed as JSON (empty body: empty dict)."""
        return json.loads(self.body) if self.body else {}


class Response:
    """Status, body bytes and content type."""

    __slots__ = ("status", "body", "content_type")

    def __init__(self, status: int, body: bytes, content_type: str = JSON) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type


def json_response(status: int, data: Any) -> Response:
    """A JSON response."""
    return Response(status, json.dumps(data).encode())


def error(status: int, message: str) -> Response:
    """A JSON error response ``{"error": message}``."""
    return json_response(status, {"error": message})


def error_response(exc: PipelineError) -> Response:
    """The one mapping of a typed error to its HTTP status (a plain PipelineError is the caller's: 400)."""
    status = exc.http_status if type(exc) is not PipelineError else 400
    return error(status, str(exc))


class App(Protocol):
    async def handle(self, request: Request) -> Response: ...

    def body_limit(self, path: str) -> int: ...


class HttpProtocol(asyncio.Protocol):
    """One client connection; requests on it are answered in order."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.pending: deque[tuple[Request | Response, bool]] = deque()
        self.busy = False
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._queue(error(400, "protocol upgrades are not supported"), False)
        except httptools.HttpParserError as exc:
            self._queue(error(400, f"malformed HTTP request: {exc}"), False)

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = 0
        self.too_large = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        parsed = httptools.parse_url(self.url)
        self.path = parsed.path.decode("utf-8", errors="replace")
        self.query = (parsed.query or b"").decode("latin-1")
        self.limit = self.app.body_limit(self.path)
        length = self.headers.get("content-length")
        if length and length.isdigit() and int(length) > self.limit:
            self.too_large = True
        elif self.headers.get("expect", "").lower() == "100-continue" and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.limit:
            self.too_large = True
            self.chunks = []
        if not self.too_large:
            self.chunks.append(body)

    def on_message_complete(self) -> None:
        keep_alive = self.parser.should_keep_alive()
        if self.too_large:
            self._queue(error(413, f"request body larger than the limit of {self.limit} bytes"), False)
            return
        body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        method = self.parser.get_method().decode("ascii")
        self._queue(Request(method, self.path, self.query, self.headers, body), keep_alive)

    def _queue(self, item: Request | Response, keep_alive: bool) -> None:
        self.pending.append((item, keep_alive))
        if not self.busy:
            self._next()

    def _next(self) -> None:
        if self.closing or not self.pending:
            self.busy = False
            return
        self.busy = True
        item, keep_alive = self.pending.popleft()
        if isinstance(item, Response):
            self._write(item, keep_alive)
            return
        task = self.loop.create_task(self.app.handle(item))
        task.add_done_callback(lambda t: self._done(t, keep_alive))

    def _done(self, task: asyncio.Task, keep_alive: bool) -> None:
        try:
            response = task.result()
        except Exception as exc:
            response = error(500, f"runtime error: {type(exc).__name__}: {exc}")
        self._write(response, keep_alive)

    def _write(self, response: Response, keep_alive: bool) -> None:
        if self.closing or self.transport is None:
            self.busy = False
            return
        head = (
            f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Unknown')}\r\n"
            f"content-type: {response.content_type}\r\ncontent-length: {len(response.body)}\r\n"
            f"{'' if keep_alive else 'connection: close' + chr(13) + chr(10)}\r\n"
        ).encode("latin-1")
        if len(response.body) < 65536:
            self.transport.write(head + response.body)
        else:
            self.transport.writelines((head, response.body))
        if not keep_alive:
            self.closing = True
            self.transport.close()
            return
        self._next()
