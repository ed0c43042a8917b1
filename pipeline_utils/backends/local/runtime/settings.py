"""Where the runtime listens and keeps its files (shared by the daemon and its client)."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline_utils.config.settings import mlops_home

DEFAULT_PORT = 8780
HOST = "127.0.0.1"
INFERENCE_PREFIX = "/dlim/v1/inference/"
ALREADY_RUNNING = 3


def runtime_dir(home: Path | None = None) -> Path:
    """``$MLOPS_HOME/runtime``: the daemon's pid/port file, lock, logs and deployment folders."""
    path = (home or mlops_home()) / "runtime"
    path.mkdir(parents=True, exist_ok=True)
    return path


def configured_port() -> int:
    """The port to listen on: ``$MLOPS_RUNTIME_PORT`` or 8780."""
    return int(os.environ.get("MLOPS_RUNTIME_PORT") or DEFAULT_PORT)
