"""Where the runtime listens and keeps its files (shared by the daemon and its client)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pipeline_utils.config.settings import mlops_home
from pipeline_utils.errors import BadInput

DEFAULT_PORT = 8780
PORT_ENV = "MLOPS_RUNTIME_PORT"
HOST = "127.0.0.1"
INFERENCE_PREFIX = "/dlim/v1/inference/"
ALREADY_RUNNING = 3


def runtime_dir(home: Path | None = None) -> Path:
    """``$MLOPS_HOME/runtime``: the daemon's pid/port file, lock, logs and deployment folders."""
    path = (home or mlops_home()) / "runtime"
    path.mkdir(parents=True, exist_ok=True)
    return path


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
