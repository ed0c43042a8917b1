"""The payload-log writer process: decodes, masks and stores the records a daemon streams to it over a Unix socket.

The daemon (:mod:`payloadlog`) sends length-prefixed frames (the :mod:`ipc` header, its request-id field
holding the deployment's slot): ``SECRETS`` (a slot's custom-arg values, JSON, before its first record and
whenever they change), ``RECORDS`` (a count N, then N entries of :data:`META` (status, latency, time, request and
response lengths), then the N raw requests and then the N raw responses, each followed by a comma) and ``FLUSH``
(write what came before now). Secrets reach this process over that private socket only, never in its command
line or environment. The writer keeps frames in a bounded queue (the oldest dropped first, whole frames, the
newest always kept), writes them in transactions of at least ``--batch`` records (one row per frame) at most
``--interval`` seconds after they arrive, and exits once the daemon's end is closed and everything received is
written, so a SIGKILLed daemon loses only what it had not sent yet. A frame is handled without a Python step per
record: its table is unpacked by ``struct.iter_unpack`` and its bodies checked and stored as two regions
(:func:`payload.stored_region`).

Both processes map a small counts file (:class:`Counts`): per slot, the daemon counts records ``sent`` and
``refused`` (its own backlog full), the writer counts them ``written``, ``dropped`` and ``failed``. The daemon
holds an exclusive ``flock`` on that file, shared with the writer that inherits it, so whoever takes the lock
next knows both are gone, and that a record neither refused, written, dropped nor failed was lost.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import select
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from pipeline_utils.kernels import ipc

RECORDS = 1
SECRETS = 2
FLUSH = 3
COUNT = struct.Struct("<I")  # the records in a RECORDS frame
META = struct.Struct("<HddII")  # a record's status, latency (ms), time (UNIX), request and response lengths

MAGIC = b"MLPLOG01"
ERROR_BYTES = 256
NAME_BYTES = 64
SLOTS = 1024
FIELDS = ("sent", "refused", "written", "dropped", "failed")
SENT, REFUSED, WRITTEN, DROPPED, FAILED = range(len(FIELDS))
HEAD_BYTES = len(MAGIC) + ERROR_BYTES
SLOT_BYTES = NAME_BYTES + 8 * len(FIELDS)
COUNTS_SIZE = HEAD_BYTES + SLOTS * SLOT_BYTES
RECEIVE_BYTES = 1 << 20
RECEIVE_ROUND_BYTES = 16 << 20
READ_PAUSE_SECONDS = 0.02


class Counts:
    """The shared counters of one writer session: a file both the daemon and its writer map."""

    def __init__(self, fd: int, *, create: bool = False) -> None:
        if create:
            os.ftruncate(fd, COUNTS_SIZE)
        elif os.fstat(fd).st_size != COUNTS_SIZE:
            raise ValueError("payload log counts file: wrong size (not written by this version)")
        self.map = mmap.mmap(fd, COUNTS_SIZE)
        if create:
            self.map[: len(MAGIC)] = MAGIC
        elif self.map[: len(MAGIC)] != MAGIC:
            self.map.close()
            raise ValueError("payload log counts file: no magic (its daemon died while creating it)")
        self.values = memoryview(self.map).cast("Q")

    @staticmethod
    def index(slot: int, field: int) -> int:
        """The position of one counter in :attr:`values` (8-byte words)."""
        return (HEAD_BYTES + slot * SLOT_BYTES + NAME_BYTES) // 8 + field

    def get(self, slot: int, field: int) -> int:
        return self.values[self.index(slot, field)]

    def add(self, slot: int, field: int, count: int = 1) -> None:
        self.values[self.index(slot, field)] += count

    def name(self, slot: int) -> str:
        start = HEAD_BYTES + slot * SLOT_BYTES
        return self.map[start : start + NAME_BYTES].rstrip(b"\0").decode("utf-8", "replace")

    def set_name(self, slot: int, name: str) -> None:
        """Name a slot (a deployment); the daemon does it before it sends the slot's first record."""
        raw = name.encode("utf-8")[:NAME_BYTES]
        start = HEAD_BYTES + slot * SLOT_BYTES
        self.map[start : start + NAME_BYTES] = raw.ljust(NAME_BYTES, b"\0")

    def named_slots(self) -> Iterator[tuple[int, str]]:
        """The slots in use and their deployment names."""
        for slot in range(SLOTS):
            name = self.name(slot)
            if not name:
                return
            yield slot, name

    def unaccounted(self, slot: int) -> int:
        """Records sent to the writer and not yet written, dropped or failed (lost, once the writer is gone)."""
        sent, refused, written, dropped, failed = (self.get(slot, field) for field in range(len(FIELDS)))
        return max(0, sent - refused - written - dropped - failed)

    @property
    def error(self) -> str:
        return self.map[len(MAGIC) : HEAD_BYTES].rstrip(b"\0").decode("utf-8", "replace")

    @error.setter
    def error(self, text: str) -> None:
        raw = text.encode("utf-8", "replace")[:ERROR_BYTES]
        self.map[len(MAGIC) : HEAD_BYTES] = raw.ljust(ERROR_BYTES, b"\0")

    def close(self) -> None:
        self.values.release()
        self.map.close()


class Frame(NamedTuple):
    """A ``RECORDS`` frame as the writer queues it."""

    last: int  # the number of records received up to and including this frame's
    slot: int
    count: int
    body: bytes


class Writer:
    """Receives frames, queues them (bounded, oldest dropped) and writes their records to the state database."""

    def __init__(self, sock: socket.socket, counts: Counts, home: Path, args: argparse.Namespace) -> None:
        self.sock = sock
        self.counts = counts
        self.home = home
        self.interval = args.interval
        self.batch = args.batch
        self.max_queued = args.max_queued
        self.max_queued_bytes = args.max_queued_bytes
        self.reader = ipc.FrameReader()
        self.queue: deque[Frame] = deque()
        self.queued_records = 0
        self.queued_bytes = 0
        self.received = 0
        self.flush_mark = 0
        self.next_write = 0.0
        self.eof = False
        self.names: dict[int, str] = {}
        self.secrets: dict[int, tuple[str, ...]] = {}
        self.conn: Any = None

    def run(self) -> None:
        """Serve until the daemon's end is closed and every received record is written."""
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        while not (self.eof and not self.queue):
            if self._due():
                self._write_batch()
            elif self.queue:  # let records gather in the socket: a few large reads rather than one per arrival
                time.sleep(min(READ_PAUSE_SECONDS, max(0.0, self.next_write - time.monotonic())))
            else:
                poller.poll()
            self._receive()
        if self.conn is not None:
            self.conn.close()

    def _due(self) -> bool:
        if not self.queue:
            return False
        return (
            self.eof
            or self.queued_records >= self.batch
            or self.queue[0].last <= self.flush_mark
            or time.monotonic() >= self.next_write
        )

    def _receive(self) -> None:
        """Read what the daemon has sent so far (at most one round's worth), without waiting."""
        taken = 0
        while taken < RECEIVE_ROUND_BYTES and not self.eof:
            try:
                data = self.sock.recv(RECEIVE_BYTES)
            except BlockingIOError:
                return
            except ConnectionError:
                data = b""
            if not data:
                self.eof = True
                return
            taken += len(data)
            for slot, kind, body in self.reader.feed(data):
                self._frame(slot, kind, body)

    def _frame(self, slot: int, kind: int, body: bytes) -> None:
        if kind == RECORDS:
            self._enqueue(slot, body)
        elif kind == SECRETS:
            self.names[slot] = self.counts.name(slot)
            self.secrets[slot] = tuple(json.loads(body))
        elif kind == FLUSH:
            self.flush_mark = self.received

    def _enqueue(self, slot: int, body: bytes) -> None:
        """Queue a ``RECORDS`` frame; drop the oldest frames while more than ``max_queued`` records or
        ``max_queued_bytes`` wait (the newest frame is always kept)."""
        (count,) = COUNT.unpack_from(body)
        if not self.queue:
            self.next_write = time.monotonic() + self.interval
        self.received += count
        self.queue.append(Frame(self.received, slot, count, body))
        self.queued_records += count
        self.queued_bytes += len(body)
        queue = self.queue
        while len(queue) > 1 and (self.queued_records > self.max_queued or self.queued_bytes > self.max_queued_bytes):
            old = queue.popleft()
            self.queued_records -= old.count
            self.queued_bytes -= len(old.body)
            self.counts.add(old.slot, DROPPED, old.count)

    def _write_batch(self) -> None:
        """Store queued frames (at least ``batch`` records, or all) in one transaction, one row per frame."""
        from pipeline_utils.monitor.payloadstore import append_batches
        from pipeline_utils.store import connect

        queue = self.queue
        frames = []
        taken = 0
        while queue and (not frames or taken < self.batch):
            frame = queue.popleft()
            frames.append(frame)
            taken += frame.count
        self.queued_records -= taken
        self.queued_bytes -= sum(len(frame.body) for frame in frames)
        if not queue:
            self.next_write = time.monotonic() + self.interval
        outcome = WRITTEN
        try:
            rows = [self._row(frame) for frame in frames]
            if self.conn is None:
                self.conn = connect(self.home)
            append_batches(rows, conn=self.conn)
        except Exception as exc:  # noqa: BLE001 - a failed write must not stop the writer
            outcome = FAILED
            self.counts.error = f"{type(exc).__name__}: {exc}"
            print(f"mlops runtime: payload log write failed: {self.counts.error}", file=sys.stderr, flush=True)
            if self.conn is not None:
                self.conn.close()
                self.conn = None
        for frame in frames:
            self.counts.add(frame.slot, outcome, frame.count)

    def _row(self, frame: Frame) -> Any:
        """One frame's records as a row of the payload log (checked, masked and formatted by C loops)."""
        from pipeline_utils.monitor.payload import clean_secrets, stored_region
        from pipeline_utils.monitor.payloadstore import batch_row

        body, count = frame.body, frame.count
        tables_end = COUNT.size + count * META.size
        statuses, elapsed_ms, logged_at, request_lengths, response_lengths = zip(
            *META.iter_unpack(body[COUNT.size : tables_end]), strict=True
        )
        requests_end = tables_end + sum(request_lengths) + count
        if len(body) != requests_end + sum(response_lengths) + count:
            raise ValueError(f"a frame of {count} records whose bodies do not add up to its length {len(body)}")
        secrets = clean_secrets(self.secrets.get(frame.slot))
        requests = stored_region(body[tables_end:requests_end], request_lengths, secrets)
        responses = stored_region(body[requests_end:], response_lengths, secrets)
        return batch_row(self.names[frame.slot], logged_at, statuses, elapsed_ms, requests, responses)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipeline_utils.backends.local.runtime.payloadwriter")
    parser.add_argument("--home", type=Path, required=True, help="the state directory (MLOPS_HOME)")
    parser.add_argument("--socket-fd", type=int, required=True, help="inherited Unix socket from the daemon")
    parser.add_argument("--counts-fd", type=int, required=True, help="inherited, locked counts file")
    parser.add_argument("--interval", type=float, required=True, help="seconds a record may wait before a write")
    parser.add_argument("--batch", type=int, required=True, help="records per transaction; also written at once")
    parser.add_argument("--max-queued", type=int, required=True, help="records kept before the oldest is dropped")
    parser.add_argument("--max-queued-bytes", type=int, required=True, help="body bytes kept before dropping")
    args = parser.parse_args(argv)
    for field in ("interval", "batch", "max_queued", "max_queued_bytes"):
        if getattr(args, field) <= 0:
            parser.error(f"--{field.replace('_', '-')} must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point: serve the inherited socket, then exit (the daemon closed its end)."""
    args = parse_args(argv)
    sock = socket.socket(fileno=args.socket_fd)
    sock.setblocking(False)
    counts = Counts(args.counts_fd)
    try:
        Writer(sock, counts, args.home, args).run()
    finally:
        counts.close()
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
