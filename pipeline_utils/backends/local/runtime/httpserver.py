"""A small, bounded HTTP/1.1 server on asyncio and httptools: keep-alive, pipelining, TCP_NODELAY.

The application is an object with ``async handle(request) -> Response`` and ``body_limit(path) -> int``.
Every bound is a field of :class:`~.httplimits.Limits` (``MLOPS_RUNTIME_*`` variables): a request URL or
head over its cap is answered 414/431 as soon as the cap is crossed (the rest is never buffered), a body known to
exceed the route's limit 413 before it arrives; a head must arrive within a timeout, an idle keep-alive connection
is closed after one; the connection cap closes the longest-idle connection to admit a new one (503 when none is
idle); reading pauses while too many pipelined requests wait or the client does not read its answers; shutdown
answers what was received, then closes. HEAD is answered with GET's headers and no body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections import OrderedDict, deque
from http import HTTPStatus
from typing import Any, Protocol

import httptools

from pipeline_utils.backends.local.runtime.httplimits import Limits, connection_cap, setting_name
from pipeline_utils.errors import PipelineError

JSON = "application/json"
REASONS = {s.value: s.phrase for s in HTTPStatus}
LINGER_SECONDS = 2.0
"""How long a refused connection's remaining input is read and dropped, so that its client reads the answer."""
HEAD_END = b"\r\n\r\n"


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
    """Status, body bytes, content type and any further headers (name, value) to send."""

    __slots__ = ("status", "body", "content_type", "headers")

    def __init__(
        self, status: int, body: bytes, content_type: str = JSON, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers


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


class Connections:
    """The open connections of one listener: the cap with idle eviction, one periodic timeout sweep, the drain."""

    def __init__(self, limits: Limits, cap: int | None = None) -> None:
        self.limits = limits
        self.cap = cap
        self.open: set[HttpProtocol] = set()
        self.lingering: OrderedDict[HttpProtocol, None] = OrderedDict()
        self.idle_order: list[tuple[float, HttpProtocol]] = []
        self.now = 0.0
        self.tick = min(1.0, min(limits.header_timeout, limits.keepalive_timeout, limits.stall_timeout) / 4)
        self.sweeper: asyncio.TimerHandle | None = None
        self.draining = False
        self.emptied: asyncio.Event | None = None

    def admit(self, protocol: HttpProtocol) -> bool:
        """Count a new connection in; False when it must be answered 503 (at the cap with none idle, or draining)."""
        if self.sweeper is None:
            self.now = protocol.loop.time()
            self.sweeper = protocol.loop.call_at(self.now + self.tick, self._sweep, protocol.loop)
        admitted = not self.draining and self._make_room()
        self.open.add(protocol)
        return admitted

    def _make_room(self) -> bool:
        while self.cap is not None and len(self.open) >= self.cap:
            victim = self.lingering.popitem(last=False)[0] if self.lingering else self._longest_idle()
            if victim is None:
                return False
            victim.evict()
        return True

    def _longest_idle(self) -> HttpProtocol | None:
        """The connection idle the longest: from a list sorted once and used up (entries that are no longer idle
        since they were listed are skipped), so that requests pay nothing for the bookkeeping."""
        for _ in range(2):
            while self.idle_order:
                since, protocol = self.idle_order.pop()
                if protocol.is_idle() and protocol.idle_since == since and protocol in self.open:
                    return protocol
            idle = [(protocol.idle_since, protocol) for protocol in self.open if protocol.is_idle()]
            self.idle_order = sorted(idle, key=lambda entry: entry[0], reverse=True)
        return None

    def forget(self, protocol: HttpProtocol) -> None:
        """Take a closed (or closing) connection out of every count."""
        self.open.discard(protocol)
        self.lingering.pop(protocol, None)
        if not self.open and self.emptied is not None:
            self.emptied.set()

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self.now = now = loop.time()
        for protocol in list(self.open):
            protocol.check(now)
        self.sweeper = loop.call_at(now + self.tick, self._sweep, loop) if self.open else None

    async def drain(self, timeout: float) -> None:
        """Close idle connections now, let the others answer what they received (up to ``timeout``), abort the rest."""
        self.draining = True
        self.emptied = asyncio.Event()
        for protocol in list(self.open):
            protocol.drain()
        if self.open:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.emptied.wait(), timeout)
        for protocol in list(self.open):
            protocol.abort()


class HttpServer:
    """A listening server and its connections: ``sockets`` says where it listens, ``drain`` shuts it down."""

    def __init__(self, server: asyncio.AbstractServer, connections: Connections) -> None:
        self.server = server
        self.connections = connections

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets (``sockets[0].getsockname()`` is the address served)."""
        return tuple(self.server.sockets)

    async def drain(self, timeout: float | None = None) -> None:
        """Stop accepting; answer the requests already received (``shutdown_timeout`` by default); close the rest."""
        self.server.close()
        await self.connections.drain(self.connections.limits.shutdown_timeout if timeout is None else timeout)


class HttpProtocol(asyncio.Protocol):
    """One client connection: requests are read within the limits and answered in order."""

    @classmethod
    async def listen(
        cls,
        app: App,
        host: str | None = None,
        port: int | None = None,
        *,
        sock: socket.socket | None = None,
        limits: Limits | None = None,
    ) -> HttpServer:
        """Serve ``app`` on ``host:port`` (or the listening ``sock``) within ``limits`` (default: from the env)."""
        limits = Limits.from_environment() if limits is None else limits
        connections = Connections(limits, connection_cap(limits))
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: cls(app, connections), host, port, sock=sock, backlog=1024)
        return HttpServer(server, connections)

    def __init__(self, app: App, connections: Connections | None = None) -> None:
        self.app = app
        self.connections = Connections(Limits.from_environment()) if connections is None else connections
        self.limits = self.connections.limits
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.pending: deque[tuple[Request | Response, bool, bool]] = deque()
        self.busy = False
        self.closing = False
        self.refused = False
        self.draining = False
        self.peer_closed = False
        self.in_head = False
        self.in_body = False
        self.used = False
        self.head_bytes = 0
        self.head_tail = b""
        self.body_left = 0
        self.chunked = False
        self.bodies: list[int] = []
        self.backlog = b""
        self.read_paused = False
        self.write_paused = False
        self.unsent = 0
        self.write_paused_at = self.idle_since = self.read_started = self.last_read = self.linger_until = 0.0

    # -- connection events -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport.set_write_buffer_limits(high=self.limits.write_buffer_bytes)
        if self.connections.admit(self):
            self._became_idle()
        else:
            self._refuse(
                503,
                "the server is shutting down"
                if self.connections.draining
                else f"all {self.connections.cap} connections are busy ({setting_name('max_connections')})",
                (("retry-after", "1"),),
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.backlog = b""
        self.connections.forget(self)

    def eof_received(self) -> bool:
        """The client sent all it will: answer what it sent first, unless nothing is left to answer."""
        if self.closing or not (self.busy or self.pending):
            return False
        self.peer_closed = True
        return True

    def pause_writing(self) -> None:
        self.write_paused = True
        self.write_paused_at = self.connections.now
        self.unsent = self.transport.get_write_buffer_size()  # type: ignore[union-attr]
        self._pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._resume_reading()
        if not self.busy:
            self._next()

    # -- reading ---------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Parse what arrived; a read that starts at a request boundary and cannot hold a head over the cap (the
        usual read) goes to the parser whole, any other one request part at a time (``_parse``)."""
        self.last_read = self.connections.now
        if self.refused:
            return
        if self.head_bytes or self.body_left or self.chunked or len(data) > self.limits.max_head_bytes:
            self._parse(data)
            return
        self.bodies.clear()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._malformed(exc)
            return
        if self.in_head:
            self._count_partial_head(data)

    def _parse(self, data: bytes) -> None:
        """Feed ``data`` one request part at a time, so that a head is never fed past ``max_head_bytes``."""
        self.bodies.clear()
        try:
            while data and not self.refused:
                if self.body_left:
                    if len(data) <= self.body_left:
                        self.parser.feed_data(data)
                        return
                    size = self.body_left
                    self.parser.feed_data(data[:size])
                    data = data[size:]
                elif self.chunked:
                    self.parser.feed_data(data)
                    if self.in_head:
                        self._count_head_after_chunked(data)
                    return
                else:
                    data = self._parse_head(data)
                if self.read_paused and data:
                    self.backlog = data
                    return
        except httptools.HttpParserError as exc:
            self._malformed(exc)

    def _malformed(self, exc: httptools.HttpParserError) -> None:
        if isinstance(exc, httptools.HttpParserUpgrade):
            self._refuse(400, "protocol upgrades are not supported")
        else:
            self._refuse(400, f"malformed HTTP request: {exc}")

    def _parse_head(self, data: bytes) -> bytes:
        """Feed the head part of ``data`` (answer 431 once it would pass ``max_head_bytes``); return the rest."""
        size = -1
        if self.head_bytes:
            joined = (self.head_tail + data[:3]).find(HEAD_END)
            if joined >= 0:
                size = joined + 4 - len(self.head_tail)
        if size < 0:
            end = data.find(HEAD_END)
            size = end + 4 if end >= 0 else len(data)
        room = self.limits.max_head_bytes - self.head_bytes
        if size > room:
            self.parser.feed_data(data[:room])
            self._refuse(431, f"request head larger than {self.limits.max_head_bytes} bytes")
            return b""
        head, rest = (data, b"") if size == len(data) else (data[:size], data[size:])
        self.parser.feed_data(head)
        if self.in_head:
            self.head_bytes += size
            self.head_tail = head[-3:]
        else:
            self.head_bytes = 0
        return rest

    def _count_head_after_chunked(self, data: bytes) -> None:
        """After a chunked body, the next head's size so far: from the last blank line of ``data`` (an upper bound)."""
        end = data.rfind(HEAD_END)
        self.head_bytes = len(data) - (end + 4 if end >= 0 else 0)
        self.head_tail = data[-3:]
        if self.head_bytes > self.limits.max_head_bytes:
            self._refuse(431, f"request head larger than {self.limits.max_head_bytes} bytes")

    def _count_partial_head(self, data: bytes) -> None:
        """The bytes of the head left incomplete at the end of ``data``, a read that began at a request boundary:
        past each request completed in it (its head up to the blank line, then its body)."""
        start = 0
        for body in self.bodies:
            if body < 0:
                self._count_head_after_chunked(data)
                return
            start = data.find(HEAD_END, start) + 4 + body
        self.head_bytes = len(data) - start
        self.head_tail = data[-3:]

    def on_message_begin(self) -> None:
        self.in_head = self.used = True
        self.read_started = self.connections.now
        self.url = b""
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.limits.max_url_bytes:
            self._refuse(414, f"request URL longer than {self.limits.max_url_bytes} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.in_head = False
        if self.refused:
            return
        if len(self.headers) > self.limits.max_headers:
            self._refuse(431, f"more than {self.limits.max_headers} request headers")
            return
        parsed = httptools.parse_url(self.url)
        self.path = parsed.path.decode("utf-8", errors="replace")
        self.query = (parsed.query or b"").decode("latin-1")
        self.limit = self.app.body_limit(self.path)
        length = self.headers.get("content-length")
        if length and length.isdigit():
            size = int(length)
            if size > self.limit:
                self._refuse(413, f"request body larger than the limit of {self.limit} bytes")
                return
            self.body_left = size
            self.in_body = size > 0
        elif "chunked" in self.headers.get("transfer-encoding", "").lower():
            self.chunked = self.in_body = True
        if self.in_body and self.headers.get("expect", "").lower() == "100-continue" and not self.busy:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # type: ignore[union-attr]

    def on_body(self, body: bytes) -> None:
        if self.refused:
            return
        if self.body_left:
            self.body_left -= len(body)
        self.size += len(body)
        if self.size > self.limit:
            self._refuse(413, f"request body larger than the limit of {self.limit} bytes")
            return
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.bodies.append(-1 if self.chunked else self.size)
        self.in_body = self.chunked = False
        self.body_left = 0
        if self.refused:
            return
        keep_alive = self.parser.should_keep_alive()
        body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        method = self.parser.get_method().decode("ascii")
        self._queue(Request(method, self.path, self.query, self.headers, body), keep_alive, method == "HEAD")

    # -- back-pressure ---------------------------------------------------------------------------

    def _pause_reading(self) -> None:
        if not self.read_paused and not self.refused and self.transport is not None and not self.closing:
            self.read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        """Read again once few requests wait and answers flow: first what was read meanwhile, then the socket."""
        if not self.read_paused or self.write_paused or self.draining or self.closing:
            return
        if len(self.pending) > self.limits.max_pipelined // 2:
            return
        self.read_paused = False
        backlog, self.backlog = self.backlog, b""
        if backlog:
            self._parse(backlog)
        if not self.read_paused and self.transport is not None and not self.closing:
            self.transport.resume_reading()

    # -- answering -------------------------------------------------------------------------------

    def _queue(self, item: Request | Response, keep_alive: bool, head: bool) -> None:
        self.pending.append((item, keep_alive, head))
        if not self.busy:
            self._next()
        elif len(self.pending) >= self.limits.max_pipelined:
            self._pause_reading()

    def _next(self) -> None:
        if self.closing or self.write_paused or not self.pending:
            self.busy = False
            if not self.pending and not self.closing:
                self._became_idle()
            return
        self.busy = True
        item, keep_alive, head = self.pending.popleft()
        if self.read_paused:
            self.loop.call_soon(self._resume_reading)
        if isinstance(item, Response):
            self._write(item, keep_alive, head)
            return
        task = self.loop.create_task(self.app.handle(item))
        task.add_done_callback(lambda t: self._done(t, keep_alive, head))

    def _done(self, task: asyncio.Task, keep_alive: bool, head: bool) -> None:
        try:
            response = task.result()
        except Exception as exc:
            response = error(500, f"runtime error: {type(exc).__name__}: {exc}")
        self._write(response, keep_alive, head)

    def _write(self, response: Response, keep_alive: bool, head: bool) -> None:
        if self.closing or self.transport is None:
            self.busy = False
            return
        if keep_alive and (self.draining or self.peer_closed) and not self.pending:
            keep_alive = False
        extra = "".join(f"{name}: {value}\r\n" for name, value in response.headers) if response.headers else ""
        text = (
            f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Unknown')}\r\n"
            f"content-type: {response.content_type}\r\ncontent-length: {len(response.body)}\r\n{extra}"
            f"{'' if keep_alive else 'connection: close' + chr(13) + chr(10)}\r\n"
        ).encode("latin-1")
        if head:
            self.transport.write(text)
        elif len(response.body) < 65536:
            self.transport.write(text + response.body)
        else:
            self.transport.writelines((text, response.body))
        if not keep_alive:
            self._finish()
            return
        self._next()

    def _finish(self) -> None:
        """After the last answer: close; a refused client's remaining input is read and dropped for a while first."""
        self.closing = True
        self.busy = False
        transport = self.transport
        if transport is None:
            return
        if not self.refused or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self.linger_until = self.connections.now + LINGER_SECONDS
        self.connections.lingering[self] = None
        if self.read_paused:
            self.read_paused = False
            transport.resume_reading()

    def _refuse(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        """Answer ``status`` after the requests already received, then close; input from now on is dropped."""
        if self.refused:
            return
        self.refused = True
        self.in_head = self.in_body = False
        self.backlog = b""
        self._queue(Response(status, json.dumps({"error": message}).encode(), JSON, headers), False, False)

    def _became_idle(self) -> None:
        if self.peer_closed or self.draining:
            self.closing = True
            self.transport.close()  # type: ignore[union-attr]
        else:
            self.idle_since = self.loop.time()

    def is_idle(self) -> bool:
        """Nothing received and unanswered, nothing arriving: a keep-alive connection that may be closed."""
        return not (self.closing or self.busy or self.pending or self.in_head or self.in_body)

    # -- limits over time (called by the sweep of Connections) -----------------------------------

    def check(self, now: float) -> None:
        """Close this connection if it overran a timeout: head, body stall, unread answers, idle, lingering."""
        limits = self.limits
        if self.closing:
            if self.linger_until and now >= self.linger_until:
                self.abort()
        elif self.write_paused:
            unsent = self.transport.get_write_buffer_size()  # type: ignore[union-attr]
            if unsent < self.unsent:
                self.unsent, self.write_paused_at = unsent, now
            elif now - self.write_paused_at > limits.stall_timeout:
                self.abort()
        elif self.read_paused:
            return
        elif self.in_head:
            if now - self.read_started > limits.header_timeout:
                self._refuse(408, f"request head not received within {limits.header_timeout:g} s")
        elif self.in_body:
            if now - self.last_read > limits.stall_timeout:
                self._refuse(408, f"request body stalled for {limits.stall_timeout:g} s")
        elif self.is_idle() and now - self.idle_since > self._idle_timeout():
            self.evict()

    def _idle_timeout(self) -> float:
        """Keep-alive after an answer; before any request, only as long as a head may take."""
        return self.limits.keepalive_timeout if self.used else self.limits.header_timeout

    def evict(self) -> None:
        """Close this connection now (idle, or lingering after a refusal) and stop counting it."""
        self.connections.forget(self)
        self.closing = True
        if self.transport is None:
            return
        if self.linger_until:
            self.transport.abort()
        else:
            self.transport.close()

    def abort(self) -> None:
        """Drop this connection at once, whatever it was doing."""
        self.connections.forget(self)
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def drain(self) -> None:
        """At shutdown: close now when nothing was received to answer; otherwise stop reading and close after it."""
        if self.closing or not (self.busy or self.pending):
            self.evict()
            return
        self._pause_reading()
        self.draining = True
