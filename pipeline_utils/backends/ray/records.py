"""What the ray target keeps of each deployment it created, so that a stopped one (removed from the cluster's
config) can be applied again (its Serve application config and profile), and of each endpoint (its attached
deployments and split). Plain values only, never custom args."""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline_utils.errors import NotFound
from pipeline_utils.fsutil import atomic_write_text


class Records:
    """One JSON file per deployment under ``folder`` (``$MLOPS_HOME/deployments/ray``), or per endpoint; ``kind``
    and ``field`` name them in a NotFound."""

    def __init__(self, folder: Path, kind: str = "ray deployment", field: str = "--name") -> None:
        self.folder = Path(folder)
        self.kind = kind
        self.field = field

    def path(self, name: str) -> Path:
        """The record file of deployment ``name``."""
        return self.folder / f"{name}.json"

    def exists(self, name: str) -> bool:
        """Whether deployment ``name`` has a record."""
        return self.path(name).is_file()

    def read(self, name: str) -> dict[str, Any]:
        """The record of ``name``; NotFound when there is none."""
        try:
            return json.loads(self.path(name).read_text())
        except FileNotFoundError:
            raise NotFound(f"no {self.kind} named {name!r}", field=self.field) from None

    def write(self, record: dict[str, Any]) -> None:
        """Store a record (sorted keys: a re-write of the same state gives the same file)."""
        atomic_write_text(self.path(record["name"]), json.dumps(record, indent=2, sort_keys=True) + "\n")

    def remove(self, name: str) -> None:
        """Forget deployment ``name``."""
        self.path(name).unlink(missing_ok=True)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """An exclusive lock on the folder (its ``.lock`` file) while the block runs, across processes (not
        reentrant): a read-check-write of records made one at a time."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def names(self) -> list[str]:
        """Every recorded deployment, sorted."""
        return sorted(path.stem for path in self.folder.glob("*.json")) if self.folder.is_dir() else []
