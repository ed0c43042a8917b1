"""Length-prefixed frames between the daemon and its kernel workers.

A frame is a 9-byte header (body length, request id, kind) followed by the body bytes.
A KSERVE body, and the RESULT body answering it, is either JSON or an Open Inference Protocol binary body
framed as :mod:`pipeline_utils.oip` describes.
"""

from __future__ import annotations

import socket
import struct

HEADER = struct.Struct("<IIB")
HEADER_SIZE = HEADER.size

# daemon -> worker
TASK = 1
KSERVE = 2
SHUTDOWN = 3
ASSIGN = 4
# worker -> daemon
RESULT = 10
BAD_INPUT = 11
KERNEL_ERROR = 12
READY = 20
START_FAILED = 21


def pack(request_id: int, kind: int, body: bytes = b"") -> bytes:
    """One frame as bytes."""
    return HEADER.pack(len(body), request_id, kind) + body


class FrameReader:
    """Incremental frame parser: feed bytes, take complete frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        """Add received bytes and return the frames they complete."""
        buf = self._buffer
        buf += data
        frames = []
        offset = 0
        end = len(buf)
        while end - offset >= HEADER_SIZE:
            length, request_id, kind = HEADER.unpack_from(buf, offset)
            start = offset + HEADER_SIZE
            if end - start < length:
                break
            frames.append((request_id, kind, bytes(buf[start : start + length])))
            offset = start + length
        if offset:
            del buf[:offset]
        return frames


class Channel:
    """The worker's blocking end of the socket pair."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = FrameReader()
        self._pending: list[tuple[int, int, bytes]] = []

    def receive(self, limit: int = 1) -> list[tuple[int, int, bytes]]:
        """Wait for at least one frame and return up to ``limit`` of those already received."""
        while not self._pending:
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError("the runtime daemon closed the channel")
            self._pending.extend(self.reader.feed(data))
        try:
            while len(self._pending) < limit:
                data = self.sock.recv(1 << 20, socket.MSG_DONTWAIT)
                if not data:
                    break
                self._pending.extend(self.reader.feed(data))
        except BlockingIOError:
            pass
        batch, self._pending = self._pending[:limit], self._pending[limit:]
        return batch

    def send(self, frames: list[bytes]) -> None:
        """Send frames in one write."""
        self.sock.sendall(frames[0] if len(frames) == 1 else b"".join(frames))
