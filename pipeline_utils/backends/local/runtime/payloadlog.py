"""Payload logging for the runtime, daemon side: the event loop streams raw records to a writer process.

``put`` (on the event loop, under a microsecond) parses nothing: it counts the record in the session's counts file
and keeps its status, latency, time and body lengths (packed) and its raw request and response bytes in the
deployment's lists. Every ``SEND_SECONDS`` (or as soon as ``SEND_BYTES`` wait) each deployment's lists are joined
into one ``RECORDS`` frame (the requests back to back, each followed by a comma, then the responses) and one
``sendmsg`` hands the frames to the writer process (:mod:`payloadwriter`) over a Unix socket pair. The writer
checks, masks and writes in its own process, so it does not share the daemon's GIL, and handles a whole frame with a
few passes of C code over each buffer, never a Python step per record (see :func:`payload.stored_region`). A
deployment's custom-arg values reach the writer over that socket only, once per deployment and when they change.

Bounded: a record that finds ``MAX_QUEUED`` records or ``MAX_QUEUED_BYTES`` of bodies waiting to be sent (the writer
stuck) is refused; the writer keeps at most as many (and the newest frame) and drops the oldest frames; both count
as ``dropped``. Bounded loss: when the daemon is SIGKILLed, what it had not sent yet (``SEND_SECONDS`` of records,
more only while the writer's socket is full) is lost; its writer reads to the end of the stream, writes what it
received and exits. The next daemon's :class:`PayloadLog` waits (in a thread) for the lock on the counts file of
each earlier writer, counts the records sent and never written, dropped or failed, and reports them as ``lost`` (the
daemon log, :meth:`PayloadLog.stats`, ``/metrics``). A writer that dies is replaced (after
``RESPAWN_PAUSE_SECONDS``) and its losses are counted the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import secrets as tokens
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from pipeline_utils.backends.local.runtime.payloadwriter import (
    COUNT,
    DROPPED,
    FAILED,
    FLUSH,
    META,
    RECORDS,
    REFUSED,
    SECRETS,
    SENT,
    SLOTS,
    WRITTEN,
    Counts,
)
from pipeline_utils.backends.local.runtime.settings import daemon_environment, runtime_dir
from pipeline_utils.kernels import ipc

BATCH = 200
MAX_QUEUED = 10_000
MAX_QUEUED_BYTES = 128 * 1024 * 1024
SOCKET_BUFFER = 4 << 20
IOV_MAX = 1000
RETRY_SECONDS = 0.002
SEND_SECONDS = 0.05
SEND_BYTES = 1 << 20
POLL_SECONDS = 0.005
RESPAWN_PAUSE_SECONDS = 1.0
WRITER_MODULE = "pipeline_utils.backends.local.runtime.payloadwriter"
FLUSH_FRAME = ipc.pack(0, FLUSH)
RECORD_BYTES = META.size + 2  # what a record adds to a frame beside its bodies (its table entry, two commas)


def _interval() -> float:
    try:
        return max(0.01, float(os.environ.get("MLOPS_RUNTIME_PAYLOAD_INTERVAL") or 0.5))
    except ValueError:
        return 0.5


def counts_dir(home: Path) -> Path:
    """``runtime/payload-log`` (in the 0700 runtime folder): one counts file per writer process."""
    path = runtime_dir(home) / "payload-log"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _log(message: str) -> None:
    print(f"mlops runtime: payload log: {message}", file=sys.stderr, flush=True)


def _spawn_writer(home: Path, counts_fd: int, interval: float) -> tuple[socket.socket, subprocess.Popen]:
    """Start a writer process on one end of a fresh socket pair, with the counts file; returns the daemon's end."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    for end in (parent, child):
        end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
        end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
    options = {
        "--home": home,
        "--socket-fd": child.fileno(),
        "--counts-fd": counts_fd,
        "--interval": interval,
        "--batch": BATCH,
        "--max-queued": MAX_QUEUED,
        "--max-queued-bytes": MAX_QUEUED_BYTES,
    }
    command = [sys.executable, "-m", WRITER_MODULE, *(str(part) for item in options.items() for part in item)]
    try:
        proc = subprocess.Popen(
            command,
            env=daemon_environment(os.environ),
            cwd=counts_dir(home),
            pass_fds=(child.fileno(), counts_fd),
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a signal to the daemon's group does not cut the writer short
        )
    except OSError:
        parent.close()
        raise
    finally:
        child.close()
    parent.setblocking(False)
    return parent, proc


class _Slot:
    """A deployment's place in a session's counts file, the custom-arg values its writer was given, and its
    records not framed yet (see the module docstring)."""

    __slots__ = ("index", "sent", "refused", "secrets", "metas", "requests", "responses")

    def __init__(self, index: int, secrets: tuple) -> None:
        self.index = index
        self.sent = Counts.index(index, SENT)
        self.refused = Counts.index(index, REFUSED)
        self.secrets = secrets
        self.metas: list[bytes] = []
        self.requests: list[bytes] = []
        self.responses: list[bytes] = []

    @property
    def pending(self) -> int:
        """Records put and not framed yet."""
        return len(self.metas)

    def frame(self) -> list[bytes]:
        """The buffered records as one ``RECORDS`` frame (a list of buffers to send, joined once here rather than
        grown per record); the buffers start afresh."""
        body = (COUNT.pack(len(self.metas)), b"".join(self.metas), b",".join(self.requests), b",",
                b",".join(self.responses), b",")
        self.metas, self.requests, self.responses = [], [], []
        return [ipc.HEADER.pack(sum(len(part) for part in body), self.index, RECORDS), *body]


class _Session:
    """One writer process: its socket, its counts file (flock held, shared with the writer), unsent frames."""

    def __init__(self, home: Path, interval: float) -> None:
        self.path = counts_dir(home) / f"{os.getpid()}-{tokens.token_hex(6)}.counts"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            self.counts = Counts(self.fd, create=True)
            self.sock: socket.socket | None
            self.sock, self.proc = _spawn_writer(home, self.fd, interval)
        except BaseException:
            if hasattr(self, "counts"):
                self.counts.close()
            os.close(self.fd)
            self.path.unlink()
            raise
        self.waiter: threading.Thread | None = None
        self.slots: dict[str, _Slot] = {}
        self.out: list[Any] = []
        self.out_records: list[int] = []  # beside each buffer of ``out``: the records whose frame it ends
        self.out_bytes = 0
        self.unsent = 0  # records put and not handed to the socket yet (buffered in slots or in ``out``)
        self.scheduled = False
        self.blocked = False  # the socket was full at the last send
        self.closing = False
        self.finished = False

    def slot_counts(self, slot: _Slot) -> tuple[int, int, int, int]:
        """(written, dropped or refused, failed, still queued) of one deployment in this session."""
        counts, i = self.counts, slot.index
        dropped = counts.get(i, DROPPED) + counts.get(i, REFUSED)
        return counts.get(i, WRITTEN), dropped, counts.get(i, FAILED), counts.unaccounted(i)

    def totals(self) -> tuple[int, int]:
        """Over all deployments: (records sent, records written, dropped, refused or failed)."""
        counts = self.counts
        sent = done = 0
        for slot in self.slots.values():
            sent += counts.get(slot.index, SENT)
            done += sum(counts.get(slot.index, f) for f in (REFUSED, WRITTEN, DROPPED, FAILED))
        return sent, done

    def queue(self, frame: bytes) -> None:
        """Queue a control frame, after every record put before it."""
        self.frame_pending()
        self.out.append(frame)
        self.out_records.append(0)
        self.out_bytes += len(frame)

    def frame_pending(self) -> None:
        """Move every slot's buffered records into the send buffer, a frame per slot."""
        for slot in self.slots.values():
            if slot.pending:
                count = slot.pending
                parts = slot.frame()
                self.out += parts
                self.out_records += [0] * (len(parts) - 1) + [count]

    def consume(self, sent: int) -> None:
        """Forget the first ``sent`` bytes of the send buffer."""
        self.out_bytes -= sent
        out = self.out
        done = 0
        while done < len(out) and sent >= len(out[done]):
            sent -= len(out[done])
            done += 1
        del out[:done]
        self.unsent -= sum(self.out_records[:done])
        del self.out_records[:done]
        if sent:
            out[0] = memoryview(out[0])[sent:]

    def clear(self) -> None:
        """Forget everything not sent (the writer is gone)."""
        for slot in self.slots.values():
            slot.frame()
        self.out.clear()
        self.out_records.clear()
        self.out_bytes = 0
        self.unsent = 0

    def release(self) -> None:
        """Close the daemon's handles on the counts file (the flock goes once the writer's are closed too)."""
        self.finished = True
        self.counts.close()
        os.close(self.fd)


class PayloadLog:
    """The daemon's payload log (one per daemon, shared by all deployments); ``put`` runs on the event loop."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.interval = _interval()
        self.lock = threading.Lock()
        self.session: _Session | None = None
        self.retiring: list[_Session] = []
        self.finished: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # written, dropped, failed
        self.lost: dict[str, int] = defaultdict(int)
        self.earlier_writers = 0
        self.last_error = ""
        self.spawn_after = 0.0
        for path in sorted(counts_dir(home).glob("*.counts")):
            self.earlier_writers += 1
            threading.Thread(target=self._recover, args=(path,), name="payload-log-recover", daemon=True).start()

    # -- event loop side (cheap: no parsing, no copying, one send per loop iteration) ----------------

    def put(
        self, deployment: str, status: int, elapsed_ms: float, request: bytes, response: bytes, secrets: tuple
    ) -> None:
        """Hand one request/response pair to the writer; refused (counted as dropped) when its backlog is full."""
        with self.lock:
            session = self.session
            slot = None if session is None else session.slots.get(deployment)
            if slot is None or (slot.secrets is not secrets and slot.secrets != secrets):
                session, slot = self._slot_for(deployment, secrets)
                if slot is None:
                    return
            values = session.counts.values
            values[slot.sent] += 1
            size = len(request) + len(response) + RECORD_BYTES
            if session.out_bytes + size > MAX_QUEUED_BYTES or session.unsent >= MAX_QUEUED:
                values[slot.refused] += 1
                return
            slot.metas.append(META.pack(status, elapsed_ms, time.time(), len(request), len(response)))
            slot.requests.append(request if type(request) is bytes else bytes(request))
            slot.responses.append(response if type(response) is bytes else bytes(response))
            session.unsent += 1
            session.out_bytes += size
            if session.out_bytes >= SEND_BYTES and not session.blocked:
                self._pump(session)
            if not session.scheduled:
                self._schedule(session)

    def _slot_for(self, deployment: str, secrets: tuple) -> tuple[_Session, _Slot | None]:
        """(Lock held; ``put`` found no slot with these custom-arg values.) The live session, opened when needed, and
        the deployment's slot in it, named with its values (sent to the writer); no slot (the record counted as
        failed) while writers cannot start."""
        session = self.session
        if session is None or (deployment not in session.slots and len(session.slots) >= SLOTS):
            session = self._open()
            if session is None:
                self.finished[deployment][2] += 1
                return self.session, None  # type: ignore[return-value]
        return session, self._name_slot(session, deployment, secrets)

    def queued(self, deployment: str | None = None) -> int:
        """Records handed to the writer and not yet written, dropped or failed."""
        with self.lock:
            return sum(
                session.slot_counts(slot)[3]
                for session in self._sessions()
                for name, slot in session.slots.items()
                if deployment is None or name == deployment
            )

    def counters(self) -> dict[str, dict[str, int]]:
        """Per deployment: records written, dropped, failed and lost (in daemon or writer restarts)."""
        with self.lock:
            names = {*self.finished, *self.lost, *(n for s in self._sessions() for n in s.slots)}
            return {name: self._counters(name) for name in sorted(names)}

    def stats(self, deployment: str) -> dict[str, Any]:
        """What ``view`` shows; ``earlier_writers``: writers of an earlier daemon whose losses are still counted."""
        with self.lock:
            return {
                **self._counters(deployment),
                "queued": sum(s.slot_counts(s.slots[deployment])[3] for s in self._sessions() if deployment in s.slots),
                "last_error": self._error(),
                "earlier_writers": self.earlier_writers,
            }

    async def flush_async(self, timeout: float = 30.0) -> bool:
        """Wait, without blocking the loop, until everything put so far is written or dropped (:meth:`flush`)."""
        return await asyncio.get_running_loop().run_in_executor(None, self.flush, timeout)

    # -- any thread ------------------------------------------------------------------------------

    def flush(self, timeout: float = 30.0) -> bool:
        """Block until records put before this call are written (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        targets = self._flush_targets()
        while True:
            state = self._flushed(targets)
            if state is not None:
                return state
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_SECONDS)

    def close(self, timeout: float = 30.0) -> None:
        """Send what is buffered, close the stream and wait for the writers to finish writing and exit."""
        deadline = time.monotonic() + timeout
        with self.lock:
            if self.session is not None:
                self._retire(self.session)
            waiting = list(self.retiring)
        for session in waiting:
            if session.waiter is not None:
                session.waiter.join(max(0.0, deadline - time.monotonic()))
        with self.lock:
            for session in list(self.retiring):  # still writing: the next daemon counts what it loses
                self.retiring.remove(session)
                session.release()
                self.last_error = f"writer pid {session.proc.pid} still writing at shutdown"
                _log(f"{self.last_error}; the next daemon counts what it loses")

    # -- internals (called with the lock held unless said otherwise) -------------------------------

    def _sessions(self) -> list[_Session]:
        live = [] if self.session is None else [self.session]
        return live + [s for s in self.retiring if not s.finished]

    def _counters(self, deployment: str) -> dict[str, int]:
        written, dropped, failed = self.finished.get(deployment, (0, 0, 0))
        for session in self._sessions():
            slot = session.slots.get(deployment)
            if slot is not None:
                more = session.slot_counts(slot)
                written, dropped, failed = written + more[0], dropped + more[1], failed + more[2]
        return {"written": written, "dropped": dropped, "failed": failed, "lost": self.lost.get(deployment, 0)}

    def _error(self) -> str:
        live = self.session.counts.error if self.session is not None else ""
        return live or self.last_error

    def _open(self) -> _Session | None:
        """Start a new writer session (retiring the current one); None while starting writers fails."""
        if self.session is not None:
            self._retire(self.session)
        if time.monotonic() < self.spawn_after:
            return None
        try:
            self.session = _Session(self.home, self.interval)
        except (OSError, ValueError) as exc:
            self.last_error = f"the writer process did not start: {exc}"
            _log(f"{self.last_error}; records are counted as failed for {RESPAWN_PAUSE_SECONDS:.0f} s")
            self.spawn_after = time.monotonic() + RESPAWN_PAUSE_SECONDS
        return self.session

    def _name_slot(self, session: _Session, deployment: str, secrets: tuple) -> _Slot:
        """The deployment's slot, named in the counts file; its custom-arg values sent to the writer (after the
        records put with the values before)."""
        slot = session.slots.get(deployment)
        if slot is None:
            slot = session.slots[deployment] = _Slot(len(session.slots), secrets)
            session.counts.set_name(slot.index, deployment)
        slot.secrets = secrets
        session.queue(ipc.pack(slot.index, SECRETS, json.dumps([str(s) for s in secrets]).encode()))
        return slot

    def _schedule(self, session: _Session) -> None:
        """Send within ``SEND_SECONDS`` (one system call for the records put meanwhile); at once off a loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._pump(session)
            return
        session.scheduled = True
        loop.call_later(SEND_SECONDS, self._pump_later, session)

    def _pump_later(self, session: _Session) -> None:
        """On the loop, without the lock held: send, and try again shortly while the writer's socket is full."""
        with self.lock:
            session.scheduled = False
            self._pump(session)
            if session.out and session.sock is not None:
                session.scheduled = True
                asyncio.get_running_loop().call_later(RETRY_SECONDS, self._pump_later, session)

    def _pump(self, session: _Session) -> None:
        """Send what the socket takes now, without blocking."""
        session.blocked = False
        session.frame_pending()
        while session.out and session.sock is not None:
            try:
                sent = session.sock.sendmsg(session.out[:IOV_MAX], (), socket.MSG_NOSIGNAL)
            except BlockingIOError:
                session.blocked = True
                return
            except OSError as exc:
                self._writer_gone(session, exc.strerror or str(exc))
                return
            session.consume(sent)

    def _writer_gone(self, session: _Session, reason: str) -> None:
        """A writer died: what it held and what was buffered for it is lost; a new one starts after a pause."""
        self.last_error = f"writer pid {session.proc.pid} exited ({reason})"
        _log(f"{self.last_error}; a new one starts with a record after {RESPAWN_PAUSE_SECONDS:.0f} s")
        self.spawn_after = time.monotonic() + RESPAWN_PAUSE_SECONDS
        session.clear()
        if session.sock is not None:
            session.sock.close()
            session.sock = None
        self._retire(session)

    def _retire(self, session: _Session) -> None:
        """No new records for this session: a thread sends what is buffered, ends the stream, waits, counts."""
        if session.closing:
            return
        session.closing = True
        if self.session is session:
            self.session = None
        self.retiring.append(session)
        session.waiter = threading.Thread(
            target=self._finish_when_done, args=(session,), name="payload-log-retire", daemon=True
        )
        session.waiter.start()

    def _finish_when_done(self, session: _Session) -> None:
        """(Thread, lock not held.) Drain the send buffer, close the stream, wait for the writer, fold its counts."""
        while True:
            with self.lock:
                self._pump(session)
                if not session.out and session.sock is not None:
                    with contextlib.suppress(OSError):
                        session.sock.shutdown(socket.SHUT_WR)
                    session.sock.close()
                    session.sock = None
                if session.sock is None:
                    break
            time.sleep(RETRY_SECONDS)
        code = session.proc.wait()
        with self.lock:
            if not session.finished:
                self._finish(session, code)

    def _finish(self, session: _Session, code: int) -> None:
        """Fold a finished session's counts into the daemon's totals; what it never wrote is lost."""
        losses = {}
        for name, slot in session.slots.items():
            written, dropped, failed, lost = session.slot_counts(slot)
            totals = self.finished[name]
            totals[0], totals[1], totals[2] = totals[0] + written, totals[1] + dropped, totals[2] + failed
            if lost:
                self.lost[name] += lost
                losses[name] = lost
        if session.counts.error:
            self.last_error = session.counts.error
        self.retiring.remove(session)
        session.release()
        session.path.unlink(missing_ok=True)
        if losses:
            _log(f"{_describe(losses)} lost: writer pid {session.proc.pid} exited (code {code}) before writing them")

    def _flush_targets(self) -> list[tuple[_Session, int]]:
        """Ask the live writer to write now; what each session must reach for the records put so far."""
        with self.lock:
            if self.session is not None:
                self.session.queue(FLUSH_FRAME)
                self._pump(self.session)
            return [(session, session.totals()[0]) for session in self._sessions()]

    def _flushed(self, targets: list[tuple[_Session, int]]) -> bool | None:
        """True once every target is reached, False if a writer died first, None while waiting."""
        with self.lock:
            for session, target in targets:
                if session.finished:
                    continue
                if session.totals()[1] >= target:
                    continue
                if session.proc.poll() is not None:
                    self._writer_gone(session, f"exit code {session.proc.returncode}")
                    return False
                if session is self.session and (session.out or session.unsent):
                    self._pump(session)
                return None
            return True

    def _recover(self, path: Path) -> None:
        """(Thread.) Once an earlier daemon's writer is done with ``path``, count what it never wrote as lost."""
        losses: dict[str, int] = {}
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            fd = -1
        if fd >= 0:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # held by that daemon and its writer until both are gone
                if os.fstat(fd).st_nlink:
                    losses = _losses(fd)
                    path.unlink(missing_ok=True)
            finally:
                os.close(fd)
        with self.lock:
            for name, lost in losses.items():
                self.lost[name] += lost
            self.earlier_writers -= 1
        if losses:
            total = sum(losses.values())
            detail = _describe(losses) if total else "no records"
            _log(f"{detail} lost when an earlier daemon stopped (its writer has finished)")


def _losses(fd: int) -> dict[str, int]:
    """Per deployment, the records an earlier session's daemon sent and its writer never accounted for."""
    try:
        counts = Counts(fd)
    except ValueError:
        return {}  # its daemon died before it named a deployment: no record was sent
    try:
        return {name: counts.unaccounted(slot) for slot, name in counts.named_slots()}
    finally:
        counts.close()


def _describe(losses: dict[str, int]) -> str:
    parts = ", ".join(f"{name}: {count}" for name, count in sorted(losses.items()) if count)
    return f"{sum(losses.values())} records ({parts})"
