"""Bounded HTTP (issue 10, point 3): caps, timeouts, the connection cap, back-pressure, 413, HEAD, drain.

In-process tests serve a small app with tight limits over real sockets on 127.0.0.1; daemon tests run the real
runtime process and watch its memory (psutil) and its open files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from pipeline_utils.backends.local.runtime import client
from pipeline_utils.backends.local.runtime.httplimits import Limits
from pipeline_utils.backends.local.runtime.httpserver import HttpProtocol, HttpServer, Request, Response
from pipeline_utils.errors import BadInput

from .loadgen import load

TIGHT = Limits(
    max_url_bytes=1024,
    max_head_bytes=4096,
    max_headers=20,
    header_timeout=0.4,
    keepalive_timeout=0.4,
    stall_timeout=0.4,
    max_connections=4,
    max_pipelined=4,
    write_buffer_bytes=65536,
    shutdown_timeout=2.0,
)
PATIENT = Limits(**{**TIGHT.__dict__, "header_timeout": 30.0, "keepalive_timeout": 30.0, "stall_timeout": 30.0})
BODY_LIMIT = 1000
BIG = 16384


class App:
    """Answers ``<path> <body>`` (``/big``: 16 KiB more; ``/slow``: after 0.3 s); bodies up to 1,000 bytes."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def handle(self, request: Request) -> Response:
        self.seen.append(request.path)
        if request.path == "/slow":
            await asyncio.sleep(0.3)
        if request.path == "/tick":
            await asyncio.sleep(0.001)
        padding = b"p" * BIG if request.path == "/big" else b""
        return Response(200, request.path.encode() + b" " + request.body + padding)

    def body_limit(self, path: str) -> int:
        return BODY_LIMIT


Scenario = Callable[[int, HttpServer, App], Awaitable[Any]]


def serve(scenario: Scenario, limits: Limits = TIGHT) -> Any:
    """Run ``scenario(port, server, app)`` against :class:`App` served within ``limits`` on a free port."""

    async def main() -> Any:
        app = App()
        server = await HttpProtocol.listen(app, "127.0.0.1", 0, limits=limits)
        try:
            return await scenario(server.sockets[0].getsockname()[1], server, app)
        finally:
            await server.drain(0.2)

    return asyncio.run(main())


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def read_head(reader: asyncio.StreamReader, timeout: float = 5.0) -> tuple[int, dict[str, str]]:
    """The status and lower-cased headers of the next answer."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
    return int(lines[0].split()[1]), headers


async def read_answer(reader: asyncio.StreamReader, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    status, headers = await read_head(reader, timeout)
    return status, headers, await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), timeout)


async def closed_by_server(reader: asyncio.StreamReader, timeout: float = 5.0) -> bool:
    """True when the server closes the connection (end of stream or reset) within ``timeout``."""
    try:
        return await asyncio.wait_for(reader.read(), timeout) == b""
    except ConnectionError:
        return True


def get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n{extra}\r\n".encode()


# -- request-line and head caps ------------------------------------------------------------------


def test_url_over_the_cap_is_414_before_the_request_line_ends() -> None:
    async def scenario(port: int, server: HttpServer, app: App) -> None:
        reader, writer = await connect(port)
        writer.write(get("/" + "a" * 1000))
        assert (await read_answer(reader))[0] == 200
        writer.write(b"GET /" + b"a" * 2000)
        status, headers, body = await read_answer(reader)
        assert (status, headers["connection"]) == (414, "close")
        assert b"1024 bytes" in body
        assert await closed_by_server(reader)

    serve(scenario)


def test_head_over_the_cap_is_431_before_it_ends() -> None:
    async def scenario(port: int, server: HttpServer, app: App) -> None:
        reader, writer = await connect(port)
        writer.write(get("/ok", "x-fits: " + "b" * 3900 + "\r\n"))
        assert (await read_answer(reader))[0] == 200
        writer.write(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nx-big: " + b"b" * 5000)
        status, _, body = await read_answer(reader)
        assert status == 431 and b"4096 bytes" in body
        assert await closed_by_server(reader)
        reader, writer = await connect(port)
        writer.write(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nx-big: " + b"b" * 3000)
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"b" * 3000)
        assert (await read_answer(reader))[0] == 431
        reader, writer = await connect(port)
        writer.write(get("/", "".join(f"x-{i}: {i}\r\n" for i in range(25))))
        status, _, body = await read_answer(reader)
        assert status == 431 and b"more than 20 request headers" in body

    serve(scenario)


def test_head_cap_counts_across_reads_and_pipelined_requests() -> None:
    async def scenario(port: int, server: HttpServer, app: App) -> None:
        reader, writer = await connect(port)
        near_cap = get("/near", "x-pad: " + "c" * 4040 + "\r\n")
        assert 4000 < len(near_cap) <= 4096
        post = b"POST /a HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 900\r\n\r\n" + b"d" * 900
        writer.write(post + near_cap[:2000])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(near_cap[2000:-2])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(near_cap[-2:])
        assert [(await read_answer(reader))[0] for _ in range(2)] == [200, 200]
        chunked = b"POST /c HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        writer.write(chunked + near_cap[:3000])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(near_cap[3000:])
        assert [(await read_answer(reader))[0] for _ in range(2)] == [200, 200]
        assert app.seen == ["/a", "/near", "/c", "/near"]

    serve(scenario, PATIENT)


# -- timeouts ------------------------------------------------------------------------------------


def test_head_trickled_slowly_is_408_then_closed() -> None:
    async def scenario(port: int, server: HttpServer, app: App) -> None:
        reader, writer = await connect(port)
        writer.write(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n")
        answer = asyncio.ensure_future(read_answer(reader, 5))
        for _ in range(50):
            if answer.done():
                break
            writer.write(b"x")
            await asyncio.sleep(0.1)
        status, _, body = await answer
        assert status == 408 and b"not received within 0.4 s" in body
        assert await closed_by_server(reader)

    serve(scenario)


def test_idle_keepalive_connection_and_silent_new_connection_are_closed() -> None:
    async def scenario(port: int, server: HttpServer, app: App) -> None:
        silent_reader, _ = await connect(port)
        reader, writer = await connect(port)
        writer.write(get("/one"))
        status, headers, _ = await read_answer(reader)
        assert status == 200 and "connection" not in headers
        assert await closed_by_server(reader, 5)
        assert await closed_by_server(silent_reader, 5)

    serve(scenario)


def test_stalled_body_is_408_then_closed() -> None:
    async def scenario(port: int, server: HttpServer, app: App) -> None:
        reader, writer = await connect(port)
        writer.write(b"POST /b HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 100\r\n\r\n" + b"e" * 10)
        status, _, body = await read_answer(reader)
        assert status == 408 and b"stalled" in body
        assert await closed_by_server(reader)

    serve(scenario)


def test_unread_answers_past_the_stall_timeout_close_the_connection() -> None:
    async def scenario(port: int, server: HttpServer, app: App) -> None:
        reader, writer = await connect(port)
        writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        writer.write(get("/big") * 2000)
        deadline = time.monotonic() + 10
        while server.connections.open and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not server.connections.open, "a client that never reads must not hold its connection forever"

    serve(scenario)


# -- connection cap ------------------------------------------------------------------------------


def test_at_the_cap_the_longest_idle_connection_makes_room() -> None:
    async def scenario(port: int, server: HttpServer, app: App) -> None:
        first, *others = [await connect(port) for _ in range(4)]
        await asyncio.sleep(0.05)
        second_reader, second_writer = others[0]
        second_writer.write(get("/again"))
        assert (await read_answer(second_reader))[0] == 200
        new_reader, new_writer = await connect(port)
        new_writer.write(get("/new"))
        assert (await read_answer(new_reader))[0] == 200
        assert await closed_by_server(first[0], 2), "the longest-idle connection is closed to admit the new one"
        for reader, writer in others:
            writer.write(get("/still-open"))
            assert (await read_answer(reader))[0] == 200

    serve(scenario, PATIENT)


def test_at_the_cap_with_no_idle_connection_the_new_one_is_503() -> None:
    async def scenario(port: int, server: HttpServer, app: App) -> None:
        busy = [await connect(port) for _ in range(4)]
        for _, writer in busy:
            writer.write(b"GET /partial HTTP/1.1\r\n")
        await asyncio.sleep(0.1)
        reader, writer = await connect(port)
        status, headers, body = await read_answer(reader)
        assert (status, headers["retry-after"], headers["connection"]) == (503, "1", "close")
        assert b"all 4 connections are busy" in body
        assert await closed_by_server(reader)
        for reader, writer in busy:
            writer.write(b"host: 127.0.0.1\r\n\r\n")
            assert (await read_answer(reader))[0] == 200

    serve(scenario, PATIENT)


# -- back-pressure -------------------------------------------------------------------------------


def test_pipelined_requests_wait_in_a_bounded_queue_and_are_all_answered_in_order() -> None:
    async def scenario(port: int, server: HttpServer, app: App) -> None:
        reader, writer = await connect(port)
        writer.write(b"".join(get(f"/tick?{i}") for i in range(300)))
        longest = 0
        answers = []
        for _ in range(300):
            longest = max([longest, *(len(p.pending) for p in server.connections.open)])
            answers.append(await read_answer(reader))
        assert longest <= TIGHT.max_pipelined
        assert [status for status, _, _ in answers] == [200] * 300 and len(app.seen) == 300

    serve(scenario, PATIENT)


def test_unread_answers_stop_the_reading_of_requests() -> None:
    async def scenario(port: int, server: HttpServer, app: App) -> None:
        reader, writer = await connect(port)
        writer.write(get("/big") * 3000)
        await asyncio.sleep(1.0)
        handled = len(app.seen)
        assert handled < 3000, "requests must not be read while their answers pile up unread"
        (protocol,) = server.connections.open
        assert protocol.transport.get_write_buffer_size() <= PATIENT.write_buffer_bytes + 2 * (BIG + 100)
        answers = [await read_answer(reader) for _ in range(3000)]
        assert [status for status, _, _ in answers] == [200] * 3000

    serve(scenario, PATIENT)


# -- bodies and HEAD -----------------------------------------------------------------------------


def test_content_length_over_the_limit_is_413_before_the_body_is_sent() -> None:
    async def scenario(port: int, server: HttpServer, app: App) -> None:
        reader, writer = await connect(port)
        writer.write(b"POST /up HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 100000000\r\n\r\n")
        status, headers, body = await read_answer(reader)
        assert (status, headers["connection"]) == (413, "close") and b"1000 bytes" in body
        assert await closed_by_server(reader)
        assert app.seen == []

    serve(scenario)


def test_chunked_body_crossing_the_limit_is_413_at_once() -> None:
    async def scenario(port: int, server: HttpServer, app: App) -> None:
        reader, writer = await connect(port)
        chunk = b"258\r\n" + b"f" * 600 + b"\r\n"
        writer.write(b"POST /up HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked\r\n\r\n" + chunk)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.2)
        writer.write(chunk)
        status, _, _ = await read_answer(reader)
        assert status == 413
        assert await closed_by_server(reader)

    serve(scenario, PATIENT)


def test_head_is_answered_with_the_headers_of_get_and_no_body() -> None:
    async def scenario(port: int, server: HttpServer, app: App) -> None:
        reader, writer = await connect(port)
        writer.write(b"HEAD /same HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n" + get("/same"))
        head_status, head_headers = await read_head(reader)
        get_status, get_headers, body = await read_answer(reader)
        assert head_status == get_status == 200
        assert head_headers == get_headers and int(head_headers["content-length"]) == len(body) > 0

    serve(scenario)


# -- drain at shutdown ---------------------------------------------------------------------------


def test_drain_answers_in_flight_requests_and_closes_idle_connections() -> None:
    async def scenario(port: int, server: HttpServer, app: App) -> None:
        idle_reader, _ = await connect(port)
        busy_reader, busy_writer = await connect(port)
        busy_writer.write(get("/slow"))
        await asyncio.sleep(0.05)
        drained = asyncio.ensure_future(server.drain(5))
        assert await closed_by_server(idle_reader, 0.2)
        status, headers, _ = await read_answer(busy_reader)
        assert (status, headers["connection"]) == (200, "close")
        await drained
        assert not server.connections.open
        with pytest.raises(OSError):
            await connect(port)

    serve(scenario, PATIENT)


# -- settings ------------------------------------------------------------------------------------


def test_limits_come_from_mlops_runtime_variables_and_bad_values_are_one_line_errors() -> None:
    limits = Limits.from_environment({"MLOPS_RUNTIME_MAX_CONNECTIONS": "300", "MLOPS_RUNTIME_HEADER_TIMEOUT": "2.5"})
    assert (limits.max_connections, limits.header_timeout, limits.max_head_bytes) == (300, 2.5, Limits().max_head_bytes)
    for name, value, problem in (
        ("MLOPS_RUNTIME_MAX_CONNECTIONS", "lots", "is not a whole number >= 1"),
        ("MLOPS_RUNTIME_MAX_HEAD_BYTES", "0", "is not a whole number >= 1"),
        ("MLOPS_RUNTIME_KEEPALIVE_TIMEOUT", "nan", "is not a number of seconds > 0"),
        ("MLOPS_RUNTIME_STALL_TIMEOUT", "-1", "is not a number of seconds > 0"),
    ):
        with pytest.raises(BadInput) as caught:
            Limits.from_environment({name: value})
        assert str(caught.value) == f"{name}: {value!r} {problem}"
    with pytest.raises(BadInput, match="^max_pipelined: 0 is not a whole number >= 1$"):
        Limits(max_pipelined=0)


def test_the_open_file_limit_is_raised_for_the_cap_or_the_cap_lowered_to_fit() -> None:
    script = (
        "import resource, sys\n"
        "from pipeline_utils.backends.local.runtime.httplimits import Limits, connection_cap\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (300, int(sys.argv[1])))\n"
        "print(connection_cap(Limits(max_connections=1000)), resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 1256:
        pytest.skip(f"the hard open-file limit here is {hard}")
    raised = subprocess.run([sys.executable, "-c", script, "2000"], capture_output=True, text=True, check=True)
    assert raised.stdout.split() == ["1000", "1256"] and raised.stderr == ""
    capped = subprocess.run([sys.executable, "-c", script, "400"], capture_output=True, text=True, check=True)
    assert capped.stdout.split() == ["144", "400"]
    assert capped.stderr.strip() == (
        "mlops runtime: MLOPS_RUNTIME_MAX_CONNECTIONS lowered from 1000 to 144: the open-file limit is 400"
    )


# -- the daemon ----------------------------------------------------------------------------------


def _daemon() -> psutil.Process:
    info = client.daemon_info()
    assert info is not None
    return psutil.Process(info["pid"])


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def _send_quietly(sock: socket.socket, size: int) -> None:
    """Send ``size`` more header bytes, until the server closes the connection."""
    block = b"a" * (1 << 20)
    with contextlib.suppress(OSError):
        for _ in range(size // len(block)):
            sock.sendall(block)


def _big_header(port: int, results: list[tuple[float, bytes]]) -> None:
    """Send a 64 MB header; record the seconds from the moment the head cap was passed to the first answer byte."""
    cap = Limits().max_head_bytes
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(10)
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nhost: 127.0.0.1\r\nx-big: " + b"a" * cap)
        crossed = time.perf_counter()
        sender = threading.Thread(target=_send_quietly, args=(sock, 64 << 20))
        sender.start()
        try:
            first = sock.recv(4096)
        except OSError as exc:
            first = repr(exc).encode()
        results.append((time.perf_counter() - crossed, first))
        sock.shutdown(socket.SHUT_RDWR)
        sender.join()


def test_64_mb_headers_are_refused_at_once_and_the_daemon_does_not_grow(runtime: str) -> None:
    daemon = _daemon()
    before = daemon.memory_info().rss
    results: list[tuple[float, bytes]] = []
    threads = [threading.Thread(target=_big_header, args=(_port(runtime), results)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    growth = (daemon.memory_info().rss - before) / 1e6
    assert [first[:12] for _, first in results] == [b"HTTP/1.1 431"] * 4, results
    assert max(seconds for seconds, _ in results) < 0.25, f"answered {[round(s, 3) for s, _ in results]} s after"
    assert growth < 16, f"the daemon grew by {growth:.0f} MB for four 64 MB headers"


def test_pipelined_flood_with_unread_answers_keeps_the_daemon_bounded(runtime: str) -> None:
    daemon = _daemon()
    before = daemon.memory_info().rss
    request = b"GET /v2/health/live HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"
    burst = request * 20000
    sent = 0
    with socket.create_connection(("127.0.0.1", _port(runtime))) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(2)
        with contextlib.suppress(TimeoutError):
            while sent < 64 << 20:
                sock.sendall(burst)
                sent += len(burst)
        time.sleep(0.5)
        growth = (daemon.memory_info().rss - before) / 1e6
    assert sent < 64 << 20, "the daemon must stop reading requests whose answers are not read"
    assert growth < 16, f"the daemon grew by {growth:.0f} MB under a pipelined flood ({sent / 1e6:.0f} MB sent)"
    assert httpx.get(f"{runtime}/v2/health/live").status_code == 200


@pytest.fixture
def file_limit_512() -> Callable[[], None]:
    """Start what follows (the daemon) with a soft open-file limit of 512, as a service manager may; the test
    calls the returned function to take its own limit back."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(512, soft), hard))

    def restore() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    yield restore
    restore()


@pytest.fixture(params=["default cap", "cap of 100"])
def connection_cap_setting(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "cap of 100":
        monkeypatch.setenv("MLOPS_RUNTIME_MAX_CONNECTIONS", "100")
    return request.param


def test_500_idle_connections_do_not_stop_normal_requests(
    connection_cap_setting: str, file_limit_512: Callable[[], None], runtime: str, echo_kernel: Path
) -> None:
    file_limit_512()
    client.create("echo", echo_kernel)
    client.start("echo")
    client.wait_ready("echo")
    idle = [socket.create_connection(("127.0.0.1", _port(runtime))) for _ in range(500)]
    try:
        answers = load(client.deployment_url("echo"), 500, 16, lambda i: {"i": i}, reconnect=True)
        assert Counter(status for status, _ in answers) == {200: 500}
        assert json.loads(answers[-1][1])["echo"]["i"] >= 0
        if connection_cap_setting == "cap of 100":
            time.sleep(0.2)
            closed = sum(_closed_now(sock) for sock in idle)
            assert closed >= 400, f"only {closed} idle connections were closed to stay within the cap of 100"
    finally:
        for sock in idle:
            sock.close()


def _closed_now(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def test_daemon_answers_head_like_get_without_a_body(runtime: str) -> None:
    with httpx.Client() as http:
        head = http.head(f"{runtime}/v2/health/live")
        got = http.get(f"{runtime}/v2/health/live")
    assert head.status_code == got.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"] == str(len(got.content))


def test_shutdown_answers_the_request_in_flight(runtime: str, echo_kernel: Path) -> None:
    client.create("echo", echo_kernel)
    client.start("echo")
    client.wait_ready("echo")
    url = client.deployment_url("echo")
    answers: list[int] = []
    def send() -> None:
        answers.append(httpx.post(url, json={"sleep": 1.0}, timeout=20).status_code)

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(0.4)
    assert client.shutdown_daemon(timeout=20)
    sender.join()
    assert answers == [200]
