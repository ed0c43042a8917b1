"""The runtime's supervising parent: holds the listening sockets and the custom-arg values, restarts a dead daemon.

The client starts it (detached) as ``python -m pipeline_utils.backends.local.runtime.supervisor --port N``. It takes
the runtime lock of ``$MLOPS_HOME``, binds the inference port and the owner-only control socket, and runs the
daemon as its child with both sockets inherited: connections made while a daemon restarts wait in the listen
backlog instead of being refused. The daemon tells it each deployment's custom-arg values over a private socket
pair and gets them all back when it starts again, so deployments with custom args serve again after a crash; the
values never touch a disk, a command line or an environment. A daemon that exits on request (admin shutdown,
SIGTERM) ends the supervisor; one that dies otherwise is started again at once, with a growing pause when it keeps
dying right after its start.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pipeline_utils.backends.local.runtime.settings import (
    ALREADY_RUNNING,
    BAD_SETTINGS,
    bind_host,
    configured_port,
    control_socket,
    runtime_dir,
    socket_address,
)
from pipeline_utils.config.settings import mlops_home

KEEPER_MESSAGE_LIMIT = 1 << 20
QUICK_DEATH = 5.0
MAX_PAUSE = 5.0


def log(message: str) -> None:
    """One line in the runtime log (the supervisor and the daemon share ``runtime/daemon.log``)."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} supervisor: {message}", flush=True)


def bind_inference(port: int) -> socket.socket:
    """The listening TCP socket of the inference port on 127.0.0.1 (all interfaces in a container)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((bind_host(), port))
    sock.listen(1024)
    return sock


def bind_control(home: Path) -> socket.socket:
    """The listening control socket, created with mode 0600 (umask) in the 0700 runtime folder."""
    path = control_socket(home)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)
    try:
        with socket_address(path) as address:
            sock.bind(address)
    finally:
        os.umask(previous)
    sock.listen(256)
    return sock


class KeptValues:
    """What must outlive a daemon: each deployment's custom-arg values, in this process's memory only."""

    def __init__(self) -> None:
        self.secrets: dict[str, dict[str, str]] = {}

    def apply(self, message: bytes) -> None:
        """Take one daemon message: ``{"set": name, "values": {...}}`` or ``{"forget": name}``."""
        try:
            change = json.loads(message)
        except ValueError:
            log("ignored a malformed keeper message")
            return
        if "set" in change:
            self.secrets[str(change["set"])] = {str(k): str(v) for k, v in dict(change.get("values") or {}).items()}
        elif "forget" in change:
            self.secrets.pop(str(change["forget"]), None)

    def snapshot(self) -> bytes:
        """Everything kept, as the first message a new daemon reads."""
        return json.dumps({"secrets": self.secrets}).encode()


class Supervisor:
    """Runs the daemon child on the inherited sockets and starts it again when it dies."""

    def __init__(self, home: Path, port: int) -> None:
        self.home = home
        self.inference = bind_inference(port)
        self.control = bind_control(home)
        self.port = self.inference.getsockname()[1]
        self.kept = KeptValues()
        self.stopping = False
        self.child: subprocess.Popen | None = None
        self.channel: socket.socket | None = None

    def spawn(self) -> None:
        """Start a daemon with the listening sockets and a fresh keeper channel, and hand it what is kept."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fds = (self.inference.fileno(), self.control.fileno(), theirs.fileno())
        command = [
            sys.executable,
            "-m",
            "pipeline_utils.backends.local.runtime.daemon",
            "--fds",
            ",".join(map(str, fds)),
        ]
        try:
            self.child = subprocess.Popen(command, pass_fds=fds, stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        ours.sendall(self.kept.snapshot())
        self.channel = ours

    def run(self) -> int:
        """Supervise until the daemon exits on request or this process is asked to stop."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        deaths = 0
        while True:
            started = time.monotonic()
            self.spawn()
            code = self._watch()
            if self.stopping or code == 0:
                return 0
            if code == BAD_SETTINGS:
                log("the daemon cannot run with these settings (see above); not starting it again")
                return code
            lived = time.monotonic() - started
            deaths = deaths + 1 if lived < QUICK_DEATH else 1
            pause = 0.0 if deaths <= 1 else min(MAX_PAUSE, 0.1 * 2 ** (deaths - 2))
            log(f"daemon pid {self.child.pid if self.child else '?'} died ({describe(code)}); "
                f"starting it again{f' in {pause:.1f} s' if pause else ''}")
            time.sleep(pause)

    def _watch(self) -> int:
        """Take keeper messages until the daemon exits; its exit code (negative: killed by that signal)."""
        assert self.child is not None and self.channel is not None
        selector = selectors.DefaultSelector()
        selector.register(self.channel, selectors.EVENT_READ)
        try:
            while self.child.poll() is None:
                if selector.select(timeout=0.05):
                    self._drain_channel()
            self._drain_channel()
        finally:
            selector.close()
            self.channel.close()
        return self.child.returncode

    def _drain_channel(self) -> None:
        assert self.channel is not None
        self.channel.setblocking(False)
        while True:
            try:
                message = self.channel.recv(KEEPER_MESSAGE_LIMIT)
            except (BlockingIOError, ConnectionError):
                return
            if not message:
                return
            self.kept.apply(message)

    def _stop(self, signum: int, frame: Any) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)


def describe(code: int) -> str:
    """An exit code in words."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def main(argv: list[str] | None = None) -> int:
    """Entry point: take the runtime lock, bind the sockets, supervise the daemon."""
    parser = argparse.ArgumentParser(prog="python -m pipeline_utils.backends.local.runtime.supervisor")
    parser.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default $MLOPS_RUNTIME_PORT)")
    args = parser.parse_args(argv)
    home = mlops_home()
    lock = (runtime_dir(home) / "daemon.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("another mlops runtime is already running for this MLOPS_HOME", file=sys.stderr)
        return ALREADY_RUNNING
    try:
        supervisor = Supervisor(home, args.port if args.port is not None else configured_port())
    except OSError as exc:
        print(f"mlops runtime: cannot listen ({exc}); set MLOPS_RUNTIME_PORT to a free port", file=sys.stderr)
        return 1
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
