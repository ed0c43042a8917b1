"""Where the local state lives, read from the environment so tests and demos can isolate it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DEFAULT_HOME = Path.home() / ".mlops"


def mlops_home(environ: Mapping[str, str] | None = None) -> Path:
    """The state directory: ``$MLOPS_HOME`` of ``environ`` (default: this process's), or ``~/.mlops`` when unset."""
    environ = os.environ if environ is None else environ
    home = Path(environ.get("MLOPS_HOME") or DEFAULT_HOME).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def volumes_root(environ: Mapping[str, str] | None = None) -> Path:
    """The folder holding local storage volumes: ``$MLOPS_VOLUMES_DIR`` or ``$MLOPS_HOME/volumes`` of ``environ``."""
    environ = os.environ if environ is None else environ
    configured = environ.get("MLOPS_VOLUMES_DIR")
    root = Path(configured).expanduser().resolve() if configured else mlops_home(environ) / "volumes"
    root.mkdir(parents=True, exist_ok=True)
    return root


def backend_name() -> str:
    """The backend the flow runs on: ``$MLOPS_BACKEND``, default ``local``."""
    return os.environ.get("MLOPS_BACKEND", "local").strip().lower() or "local"
