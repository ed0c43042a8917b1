"""The daemon's side of kernel processes: the zygote (fork server) it runs, and a Popen-like handle per kernel.

Kernels are children of the zygote, not of the daemon, so the daemon cannot ``waitpid`` them: it signals them through
a pidfd (no pid-reuse race) and learns their exit codes from the zygote, which reaps them. Each kernel's environment,
custom-arg values included, is the first frame (ASSIGN) on its own socket; the zygote never sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pipeline_utils.backends.local.runtime.settings import runtime_dir
from pipeline_utils.kernels import ipc

NOT_FORKED = 255
SOCKET_BUFFER = 1 << 20
MESSAGE_LIMIT = 1 << 16
PRELOAD_THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# pyarrow (imported by scikit-learn through pandas) starts a jemalloc thread; a fork server must have one thread only
NO_BACKGROUND_THREADS = {"JE_ARROW_MALLOC_CONF": "background_thread:false"}


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", flush=True)


class KernelHandle:
    """A kernel forked by the zygote: ``pid``, ``poll``, ``wait``, ``send_signal`` and ``kill`` as on a Popen."""

    def __init__(self, pod: str) -> None:
        self.pod = pod
        self.pid: int | None = None
        self.returncode: int | None = None
        self._pidfd: int | None = None
        self._pending: int | None = None
        self._finished = threading.Event()

    def attach(self, pid: int, pidfd: int) -> None:
        """The zygote forked the kernel: remember its pid and pidfd, and deliver a signal sent before that."""
        self.pid, self._pidfd = pid, pidfd
        if self._pending is not None:
            self.send_signal(self._pending)

    def finish(self, code: int) -> None:
        """The kernel's exit code (negative: killed by that signal), as the zygote reaped it."""
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        self.returncode = code
        self._finished.set()

    def poll(self) -> int | None:
        """The exit code once the kernel has exited and been reaped, else None."""
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the kernel's exit code; ``subprocess.TimeoutExpired`` after ``timeout`` seconds."""
        if not self._finished.wait(timeout):
            raise subprocess.TimeoutExpired(f"kernel {self.pod}", timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        """Signal the kernel through its pidfd (a signal sent before the fork is answered is sent right after it)."""
        if self.returncode is not None:
            return
        if self._pidfd is None:
            self._pending = signum
            return
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self._pidfd, signum)

    def kill(self) -> None:
        """SIGKILL the kernel."""
        self.send_signal(signal.SIGKILL)


class Zygote:
    """The fork server kernels start from: started by the daemon (again after it died), asked for one kernel at once.

    It imports the common modules once (``$MLOPS_RUNTIME_PRELOAD``), so kernels share those pages copy-on-write.
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.handles: dict[str, KernelHandle] = {}
        self.closed = False

    def ensure(self) -> None:
        """Start the zygote unless it runs."""
        if self.closed:
            raise OSError("the runtime is shutting down; no kernel is started")
        if self.sock is None:
            self._start()

    def start_kernel(self, pod: str, env: dict[str, str]) -> tuple[KernelHandle, socket.socket, int]:
        """Fork kernel ``pod`` by the zygote: its handle, the daemon's end of its socket, the read end of its output.

        ``env`` (custom-arg values included) is written to the kernel's socket, never passed to the zygote. The
        kernel's stdout and stderr are the write end of a pipe: the daemon masks and logs what it reads from it.
        """
        if not hasattr(os, "pidfd_open"):
            raise OSError("the local runtime needs Linux 5.3 or later (pidfd) to start kernels")
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        output, output_end = os.pipe2(os.O_CLOEXEC)
        try:
            for end in (parent, child):
                end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
                end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
            parent.setblocking(False)
            try:
                parent.sendall(ipc.pack(0, ipc.ASSIGN, json.dumps({"env": env}).encode()))
            except BlockingIOError:
                raise OSError("the kernel environment (settings and custom args) is too large to send") from None
            self._request(json.dumps({"pod": pod}).encode(), [child.fileno(), output_end])
        except OSError:
            parent.close()
            os.close(output)
            raise
        finally:
            child.close()
            os.close(output_end)
        handle = KernelHandle(pod)
        self.handles[pod] = handle
        return handle, parent, output

    def _request(self, request: bytes, kernel_fds: list[int]) -> None:
        """Send a fork request with the kernel's socket end and output pipe; a zygote found dead is replaced once."""
        for attempt in (1, 2):
            self.ensure()
            assert self.sock is not None
            try:
                socket.send_fds(self.sock, [request], kernel_fds)
                return
            except BlockingIOError:
                raise OSError("the zygote has too many kernel starts waiting; try again") from None
            except OSError as exc:
                self._lost(f"cannot reach it ({exc})")
                if attempt == 2:
                    raise OSError(f"the zygote did not take the kernel start ({exc})") from None

    def close(self) -> None:
        """Stop the zygote for good (kernels still running die with it)."""
        self.closed = True
        if self.sock is not None:
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        for handle in self.handles.values():
            handle.finish(-signal.SIGKILL)
        self.handles.clear()

    def _start(self) -> None:
        log = runtime_dir(self.home) / "logs" / "zygote.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
        env = {**NO_BACKGROUND_THREADS, **os.environ, **PRELOAD_THREADS, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "pipeline_utils.backends.local.runtime.zygote"]
        command += ["--fd", str(theirs.fileno()), "--parent", str(os.getpid())]
        try:
            with log.open("ab") as out:
                self.proc = subprocess.Popen(
                    command,
                    env=env,
                    cwd=log.parent,
                    pass_fds=(theirs.fileno(),),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self.sock = ours
        asyncio.get_running_loop().add_reader(ours.fileno(), self._on_message)
        _log(f"zygote started (pid {self.proc.pid}; log {log})")

    def _on_message(self) -> None:
        """Take the zygote's reports: a kernel forked (pid and pidfd), a kernel reaped (exit code), a fork refused."""
        while self.sock is not None:
            try:
                data, fds, _, _ = socket.recv_fds(self.sock, MESSAGE_LIMIT, 1)
            except BlockingIOError:
                return
            except OSError as exc:
                self._lost(f"its socket failed ({exc})")
                return
            if not data:
                self._lost("it exited")
                return
            self._take(json.loads(data), fds)

    def _take(self, message: dict[str, Any], fds: list[int]) -> None:
        handle = self.handles.get(message["pod"])
        if handle is None:
            for fd in fds:
                os.close(fd)
            return
        if "pid" in message and fds:
            handle.attach(int(message["pid"]), fds[0])
        elif "exited" in message:
            handle.finish(int(message["exited"]))
            del self.handles[handle.pod]
        else:
            _log(f"zygote: kernel {handle.pod} was not forked: {message.get('error')}")
            handle.finish(NOT_FORKED)
            del self.handles[handle.pod]

    def _lost(self, why: str) -> None:
        """The zygote is gone: its kernels died with it (PR_SET_PDEATHSIG); the next kernel start starts a new one."""
        if self.sock is None:
            return
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()
        self.sock = None
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            asyncio.get_running_loop().run_in_executor(None, proc.wait)
        for handle in self.handles.values():
            handle.kill()
            handle.finish(-signal.SIGKILL)
        _log(f"zygote lost: {why}; its {len(self.handles)} kernel(s) died with it and are replaced")
        self.handles.clear()


def summarize_enforcement(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``enforcement`` block of ``deploy view``: what the deployment's kernels measured at their start."""
    if not reports:
        unmeasured = "not measured: no kernel of this deployment has started"
        return {"memory_limit": unmeasured, "cpu_affinity": unmeasured, "gpus": "not available in the local runtime"}
    memory = sorted({str(r.get("memory_limit")) for r in reports})
    return {
        "memory_limit": memory[0] if len(memory) == 1 else f"mixed: {', '.join(memory)}",
        "cpu_affinity": all(r.get("cpu_affinity") is True for r in reports),
        "gpus": "not available in the local runtime",
        "kernels_measured": len(reports),
    }
