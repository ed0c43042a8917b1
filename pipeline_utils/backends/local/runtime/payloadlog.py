"""Payload logging for the runtime: records queued on the event loop, written in batches by a thread.

The event loop only appends a tuple (raw request and response bytes, status, latency, the deployment's
custom-arg values) to a bounded queue. A background thread decodes the JSON, masks secrets and
custom-arg values, caps sizes (all in :mod:`pipeline_utils.monitor.payload`) and writes one SQLite
transaction per batch (every ``MLOPS_RUNTIME_PAYLOAD_INTERVAL`` seconds, default 0.5, or as soon as
``BATCH`` records wait). When the queue holds ``MAX_QUEUED`` records or ``MAX_QUEUED_BYTES`` of bodies,
the oldest record is dropped and counted per deployment.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any, NamedTuple

BATCH = 200
MAX_QUEUED = 10_000
MAX_QUEUED_BYTES = 128 * 1024 * 1024


def _interval() -> float:
    try:
        return max(0.01, float(os.environ.get("MLOPS_RUNTIME_PAYLOAD_INTERVAL") or 0.5))
    except ValueError:
        return 0.5


class Entry(NamedTuple):
    seq: int
    deployment: str
    logged_at: float
    status: int
    elapsed_ms: float
    request: bytes
    response: bytes
    secrets: tuple[str, ...]


class PayloadLog:
    """The daemon's payload log writer (one per daemon, shared by all deployments)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.interval = _interval()
        self.queue: deque[Entry] = deque()
        self.queued_bytes = 0
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.done = threading.Condition()
        self.enqueued_seq = 0
        self.done_seq = 0
        self.written: dict[str, int] = defaultdict(int)
        self.dropped: dict[str, int] = defaultdict(int)
        self.failed: dict[str, int] = defaultdict(int)
        self.last_error = ""
        self.closing = False
        self.thread: threading.Thread | None = None

    # -- event loop side (cheap: no parsing, no I/O) -------------------------------------------------

    def put(
        self, deployment: str, status: int, elapsed_ms: float, request: bytes, response: bytes, secrets: tuple
    ) -> None:
        """Queue one request/response pair; drops the oldest queued record when the queue is full."""
        size = len(request) + len(response)
        with self.lock:
            self.enqueued_seq += 1
            self.queue.append(
                Entry(self.enqueued_seq, deployment, time.time(), status, elapsed_ms, request, response, secrets)
            )
            self.queued_bytes += size
            while len(self.queue) > MAX_QUEUED or (self.queued_bytes > MAX_QUEUED_BYTES and len(self.queue) > 1):
                old = self.queue.popleft()
                self.queued_bytes -= len(old.request) + len(old.response)
                self.dropped[old.deployment] += 1
            waiting = len(self.queue)
        if self.thread is None:
            self._start()
        if waiting >= BATCH:
            self.wake.set()

    def queued(self, deployment: str | None = None) -> int:
        with self.lock:
            if deployment is None:
                return len(self.queue)
            return sum(1 for e in self.queue if e.deployment == deployment)

    def stats(self, deployment: str) -> dict[str, Any]:
        """What ``view`` shows: records written, dropped (queue full), failed (write errors), still queued."""
        return {
            "written": self.written.get(deployment, 0),
            "dropped": self.dropped.get(deployment, 0),
            "failed": self.failed.get(deployment, 0),
            "queued": self.queued(deployment),
            "last_error": self.last_error,
        }

    async def flush_async(self, timeout: float = 30.0) -> bool:
        """Wait (off the loop) until everything queued so far is written or dropped."""
        if self.thread is None:
            return True
        return await asyncio.get_running_loop().run_in_executor(None, self.flush, timeout)

    # -- any thread ------------------------------------------------------------------------------

    def flush(self, timeout: float = 30.0) -> bool:
        """Block until records queued before this call are written (True) or ``timeout`` passes (False)."""
        with self.lock:
            target = self.enqueued_seq
        if self.thread is None:
            return True
        deadline = time.monotonic() + timeout
        self.wake.set()
        with self.done:
            while self.done_seq < target:
                left = deadline - time.monotonic()
                if left <= 0 or self.thread is None or not self.thread.is_alive():
                    return self.done_seq >= target
                self.done.wait(min(left, 0.1))
                self.wake.set()
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued and stop the writer thread."""
        self.flush(timeout)
        self.closing = True
        self.wake.set()
        if self.thread is not None:
            self.thread.join(timeout)

    # -- writer thread ---------------------------------------------------------------------------

    def _start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="payload-log-writer", daemon=True)
        self.thread.start()

    def _take(self) -> list[Entry]:
        with self.lock:
            count = min(BATCH, len(self.queue))
            batch = [self.queue.popleft() for _ in range(count)]
            self.queued_bytes -= sum(len(e.request) + len(e.response) for e in batch)
        return batch

    def _run(self) -> None:
        from pipeline_utils.monitor import payload  # noqa: F401 - registers the payload table's schema
        from pipeline_utils.store import connect

        conn = None
        while True:
            self.wake.wait(self.interval)
            self.wake.clear()
            while True:
                batch = self._take()
                if not batch:
                    break
                try:
                    if conn is None:
                        conn = connect(self.home)
                    self._write(conn, batch)
                except Exception as exc:  # noqa: BLE001 - a failed write must not stop the writer
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    print(f"mlops runtime: payload log write failed: {self.last_error}", file=sys.stderr, flush=True)
                    for entry in batch:
                        self.failed[entry.deployment] += 1
                    if conn is not None:
                        conn.close()
                        conn = None
                with self.done:
                    self.done_seq = batch[-1].seq
                    self.done.notify_all()
                if len(batch) < BATCH:
                    break
            with self.lock:
                if self.done_seq < self.enqueued_seq and not self.queue:
                    with self.done:  # the records in between were dropped
                        self.done_seq = self.enqueued_seq
                        self.done.notify_all()
            if self.closing and not self.queue:
                break
        if conn is not None:
            conn.close()

    def _write(self, conn: Any, batch: list[Entry]) -> None:
        from pipeline_utils.monitor.payload import decode_body, log_payloads

        records = [
            {
                "deployment": e.deployment,
                "logged_at": e.logged_at,
                "status": str(e.status),
                "elapsed_ms": round(e.elapsed_ms, 3),
                "request": decode_body(e.request),
                "response": decode_body(e.response),
                "secrets": e.secrets,
            }
            for e in batch
        ]
        log_payloads(records, conn=conn)
        for e in batch:
            self.written[e.deployment] += 1
