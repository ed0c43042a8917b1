"""The HTTP layer in process: TCP_NODELAY on accepted sockets, pipelining, malformed requests, limits."""

from __future__ import annotations

import asyncio
import socket

from pipeline_utils.backends.local.runtime.httpserver import HttpProtocol, Request, Response


class EchoApp:
    def __init__(self) -> None:
        self.protocols: list[HttpProtocol] = []

    async def handle(self, request: Request) -> Response:
        return Response(200, request.method.encode() + b" " + request.path.encode() + b" " + request.body)

    def body_limit(self, path: str) -> int:
        return 100


async def _exchange(raw: bytes) -> tuple[bytes, bool]:
    app = EchoApp()

    def factory() -> HttpProtocol:
        protocol = HttpProtocol(app)
        app.protocols.append(protocol)
        return protocol

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.sleep(0.05)
    sock = app.protocols[0].transport.get_extra_info("socket")
    nodelay = bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    writer.write(raw)
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.write_eof()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    server.close()
    return data, nodelay


def test_nodelay_and_pipelined_requests_in_order() -> None:
    raw = b"".join(f"POST /p{i} HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nb{i}".encode() for i in range(3))
    data, nodelay = asyncio.run(_exchange(raw))
    assert nodelay, "TCP_NODELAY must be set on accepted connections (uvicorn issue 3149)"
    bodies = [part.split(b"\r\n\r\n", 1)[1][:9] for part in data.split(b"HTTP/1.1 200 OK")[1:]]
    assert bodies == [b"POST /p0 ", b"POST /p1 ", b"POST /p2 "]


def test_malformed_request_and_body_limit() -> None:
    data, _ = asyncio.run(_exchange(b"NOT A REQUEST\r\n\r\n"))
    assert data.startswith(b"HTTP/1.1 400 ")
    big = b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 200\r\n\r\n" + b"z" * 200
    data, _ = asyncio.run(_exchange(big))
    assert data.startswith(b"HTTP/1.1 413 ") and b"connection: close" in data


def test_expect_100_continue() -> None:
    async def scenario() -> bytes:
        server = await asyncio.get_running_loop().create_server(lambda: HttpProtocol(EchoApp()), "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        writer.write(b"POST /e HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\n")
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        writer.write(b"abc")
        final = await asyncio.wait_for(reader.readuntil(b"POST /e abc"), 2)
        writer.close()
        server.close()
        return final

    assert asyncio.run(scenario()).startswith(b"HTTP/1.1 200 OK")
