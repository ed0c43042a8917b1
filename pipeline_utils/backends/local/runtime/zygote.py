"""The zygote: a fork server that imports the common modules once and forks every kernel from itself.

Run by the daemon (procs.Zygote) as ``python -m pipeline_utils.backends.local.runtime.zygote --fd N --parent PID``
with one end of a SOCK_SEQPACKET pair. Each request is a JSON message ``{"pod"}`` carrying the kernel's end of
its socket pair and the write end of its output pipe (its stdout and stderr, which the daemon masks and logs) by
SCM_RIGHTS; the zygote forks, answers ``{"pod", "pid"}`` with a pidfd of the child, reaps the
child when it exits and answers ``{"pod", "exited"}`` (the exit code, negative for a signal). Kernels share the
preloaded pages copy-on-write (``gc.freeze`` keeps the collector from touching them); a kernel reads its environment
from its own socket after the fork, so custom-arg values never pass through here. The zygote dies with the daemon,
its kernels with the zygote (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import NoReturn

from pipeline_utils.backends.local.runtime import worker
from pipeline_utils.backends.local.runtime.lifeline import die_with_parent
from pipeline_utils.kernels import ipc

PRELOAD = "numpy,joblib,yaml,sklearn.linear_model,pipeline_utils.kernels.flavours.estimator"
MESSAGE_LIMIT = 1 << 16
KERNEL_NAME = "mlops-kernel"  # what ps -o comm and top show for a kernel


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} zygote: {message}", flush=True)


def preload(modules: str) -> None:
    """Import the comma-separated ``modules`` (``$MLOPS_RUNTIME_PRELOAD``), logging those that fail."""
    for name in (m.strip() for m in modules.split(",")):
        if not name:
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a module that cannot be imported is only not shared
            _log(f"preload: cannot import {name}: {type(exc).__name__}: {exc}")
    threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    native = len(os.listdir("/proc/self/task"))
    if threads or native > 1:
        _log(f"preload left {native} threads running ({', '.join(threads) or 'native'}); forks carry only this one")


class ForkServer:
    """Forks kernels on request and reaps them, reporting pids and exit codes to the daemon."""

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.pid = os.getpid()
        self.selector = selectors.DefaultSelector()
        self.selector.register(control, selectors.EVENT_READ)
        self.children: dict[int, tuple[int, str]] = {}

    def serve(self) -> None:
        """Answer requests and reap kernels until the daemon closes its end."""
        while True:
            for key, _ in self.selector.select():
                if key.fd != self.control.fileno():
                    self._reap(key.fd)
                elif not self._take_request():
                    return

    def _send(self, message: dict[str, object], fds: list[int] | None = None) -> None:
        socket.send_fds(self.control, [json.dumps(message).encode()], fds or [])

    def _take_request(self) -> bool:
        data, fds, _, _ = socket.recv_fds(self.control, MESSAGE_LIMIT, 2)
        if not data:
            return False
        request = json.loads(data)
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            self._send({"pod": request["pod"], "error": "a kernel start needs its socket and its output pipe"})
            return True
        self._fork(str(request["pod"]), fds[0], fds[1])
        return True

    def _fork(self, pod: str, kernel_fd: int, output_fd: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        gc.freeze()
        try:
            pid = os.fork()
        except OSError as exc:
            with socket.socket(fileno=kernel_fd) as sock, contextlib.suppress(OSError):
                sock.sendall(ipc.pack(0, ipc.START_FAILED, f"the zygote could not fork a kernel: {exc}".encode()))
            os.close(output_fd)
            self._send({"pod": pod, "error": str(exc)})
            return
        if pid == 0:
            self._become_kernel(kernel_fd, output_fd)
        os.close(kernel_fd)
        os.close(output_fd)
        pidfd = os.pidfd_open(pid)
        self.children[pidfd] = (pid, pod)
        self.selector.register(pidfd, selectors.EVENT_READ)
        self._send({"pod": pod, "pid": pid}, [pidfd])

    def _reap(self, pidfd: int) -> None:
        pid, pod = self.children.pop(pidfd)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        worker.remove_kernel_cgroup(pod)
        self._send({"pod": pod, "exited": os.waitstatus_to_exitcode(status)})

    def _become_kernel(self, kernel_fd: int, output_fd: int) -> NoReturn:
        """In the forked child: drop the zygote's descriptors, tie its life to the zygote, run the kernel."""
        try:
            self.selector.close()
            self.control.close()
            for pidfd in self.children:
                os.close(pidfd)
            if not die_with_parent(signal.SIGKILL) or os.getppid() != self.pid:
                os._exit(1)
            os.dup2(output_fd, 1)
            os.dup2(output_fd, 2)
            os.close(output_fd)
            with contextlib.suppress(OSError):
                Path("/proc/self/comm").write_text(KERNEL_NAME)
            _reseed()
            worker.run(socket.socket(fileno=kernel_fd))
        except BaseException:  # noqa: BLE001 - nothing may return into the zygote's loop
            traceback.print_exc()
        finally:
            os._exit(1)


def _reseed() -> None:
    """Give the child its own numpy global random state (``random`` reseeds itself after a fork; numpy does not)."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def main(argv: list[str] | None = None) -> int:
    """Entry point: check the parent is alive, preload, then serve fork requests."""
    parser = argparse.ArgumentParser(prog="python -m pipeline_utils.backends.local.runtime.zygote")
    parser.add_argument("--fd", type=int, required=True, help="this end of the daemon's SOCK_SEQPACKET pair")
    parser.add_argument("--parent", type=int, required=True, help="the daemon's pid (the zygote dies with it)")
    args = parser.parse_args(argv)
    if not die_with_parent(signal.SIGKILL) or os.getppid() != args.parent:
        return 1
    started = time.perf_counter()
    preload(os.environ.get("MLOPS_RUNTIME_PRELOAD") or PRELOAD)
    worker.prepare_thread_pools()
    gc.collect()
    _log(f"ready in {time.perf_counter() - started:.2f} s with {len(sys.modules)} modules (pid {os.getpid()})")
    ForkServer(socket.socket(fileno=args.fd)).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
