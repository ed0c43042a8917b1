"""A light HTTP/1.1 load generator for tests: keep-alive connections over raw asyncio streams."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from urllib.parse import urlsplit


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    return status, await reader.readexactly(length)


FAILED = 0  # the status recorded, with ``reconnect``, for a request whose connection broke before an answer


async def _run(
    url: str,
    total: int,
    connections: int,
    payload: Callable[[int], object],
    on_answer: Callable[[int], None] | None,
    reconnect: bool,
) -> list[tuple[int, bytes]]:
    parts = urlsplit(url)
    answers: list[tuple[int, bytes]] = []
    counter = iter(range(total))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            for i in counter:
                body = json.dumps(payload(i)).encode()
                try:
                    writer.write(
                        f"POST {parts.path} HTTP/1.1\r\nhost: {parts.netloc}\r\ncontent-type: application/json\r\n"
                        f"content-length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
                    answers.append(await _read_response(reader))
                except (ConnectionError, asyncio.IncompleteReadError) as exc:
                    if not reconnect:
                        raise
                    answers.append((FAILED, repr(exc).encode()))
                    writer.close()
                    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
                if on_answer is not None:
                    on_answer(len(answers))
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return answers


def load(
    url: str,
    total: int,
    connections: int,
    payload: Callable[[int], object],
    on_answer: Callable[[int], None] | None = None,
    *,
    reconnect: bool = False,
) -> list[tuple[int, bytes]]:
    """Send ``total`` JSON POSTs over ``connections`` keep-alive connections; return (status, body) pairs.

    With ``reconnect``, a broken connection is recorded as one ``FAILED`` answer and opened again.
    """
    return asyncio.run(_run(url, total, connections, payload, on_answer, reconnect))
