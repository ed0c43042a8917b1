"""Where the runtime listens and keeps its files (shared by the daemon and its client)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from pipeline_utils.config.settings import mlops_home
from pipeline_utils.deploy.routes import ENDPOINT_PREFIX, INFERENCE_PREFIX  # noqa: F401 - the runtime's routes
from pipeline_utils.errors import BadInput

DEFAULT_PORT = 8780
PORT_ENV = "MLOPS_RUNTIME_PORT"
HOST = "127.0.0.1"
ALREADY_RUNNING = 3
BAD_SETTINGS = 78
"""The daemon's exit code for settings it cannot run with (EX_CONFIG): its supervisor does not start it again."""
MAX_SOCKET_PATH = 100
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})
CONTAINER_ENV = "MLOPS_RUNTIME_CONTAINER"
"""Set to 1 only inside a container (the image ``deploy export --target k8s`` writes): the inference port then
listens on all interfaces and accepts any Host, the pod's network being the boundary. Off on a shared machine."""


def in_container(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the runtime serves a container's network (``$MLOPS_RUNTIME_CONTAINER=1``) rather than loopback."""
    return (os.environ if environ is None else environ).get(CONTAINER_ENV) == "1"


def bind_host(environ: Mapping[str, str] | None = None) -> str:
    """The address the inference port listens on: 127.0.0.1, or every interface in a container."""
    return "0.0.0.0" if in_container(environ) else HOST


def runtime_dir(home: Path | None = None) -> Path:
    """``$MLOPS_HOME/runtime`` (mode 0700): the daemon's control socket, pid/port file, lock, logs, deployments."""
    path = (home or mlops_home()) / "runtime"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def control_socket(home: Path | None = None) -> Path:
    """The control plane's Unix socket, ``runtime/control.sock`` (mode 0600 in a 0700 folder: its owner only)."""
    return runtime_dir(home) / "control.sock"


@contextlib.contextmanager
def socket_address(path: Path) -> Iterator[str]:
    """An address for ``path`` that fits AF_UNIX's 108 bytes: the path itself, or, when it is longer, the same
    file reached through ``/proc/self/fd`` of an open handle on its folder (Linux)."""
    if len(os.fsencode(str(path))) <= MAX_SOCKET_PATH:
        yield str(path)
        return
    folder = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{folder}/{path.name}"
    finally:
        os.close(folder)


def log_dir(home: Path, name: str) -> Path:
    """The folder of a deployment's kernel logs, ``runtime/logs/<name>`` (one ``<pod>.log`` per kernel)."""
    return runtime_dir(home) / "logs" / name


def configured_port(environ: Mapping[str, str] | None = None) -> int:
    """The port to listen on: ``$MLOPS_RUNTIME_PORT`` of ``environ`` (default: this process's) or 8780."""
    environ = os.environ if environ is None else environ
    value = (environ.get(PORT_ENV) or "").strip() or str(DEFAULT_PORT)
    if not value.isdigit() or int(value) > 65535:
        raise BadInput(f"{value!r} is not a TCP port (0-65535; 0 takes any free one)", field=PORT_ENV)
    return int(value)


PASS_ENV = "MLOPS_RUNTIME_PASS_ENV"
PASSED_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "TEMP",
        "TMP",
        "VIRTUAL_ENV",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONUTF8",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "CUDA_VISIBLE_DEVICES",
    }
)
PASSED_PREFIXES = ("LC_", "MLOPS_")


def daemon_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment the runtime (and so every kernel) starts with: an allow-list, never the caller's secrets.

    Locale, paths, time zone, the interpreter's settings, CA bundles and ``MLOPS_*`` pass; so do the names the user
    lists in ``$MLOPS_RUNTIME_PASS_ENV`` (comma-separated). Everything else (API keys, tokens, proxies with
    credentials) stays with the caller; a kernel's own values arrive as settings or custom args.
    """
    extra = {name.strip() for name in environ.get(PASS_ENV, "").split(",") if name.strip()}
    return {
        name: value
        for name, value in environ.items()
        if name in PASSED_NAMES or name in extra or name.startswith(PASSED_PREFIXES)
    }
