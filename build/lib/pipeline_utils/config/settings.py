"""Where the local state lives, read from the environment so tests and demos can isolate it."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = Path.home() / ".mlops"


def mlops_home() -> Path:
    """The state directory: ``$MLOPS_HOME``, or ``~/.mlops`` when unset."""
    home = Path(os.environ.get("MLOPS_HOME") or DEFAULT_HOME).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def volumes_root() -> Path:
    """The folder holding local storage volumes: ``$MLOPS_VOLUMES_DIR`` or ``$MLOPS_HOME/volumes``."""
    configured = os.environ.get("MLOPS_VOLUMES_DIR")
    root = Path(configured).expanduser().resolve() if configured else mlops_home() / "volumes"
    root.mkdir(parents=True, exist_ok=True)
    return root


def backend_name() -> str:
    """The backend the flow runs on: ``$MLOPS_BACKEND``, default ``local``."""
    return os.environ.get("MLOPS_BACKEND", "local").strip().lower() or "local"
