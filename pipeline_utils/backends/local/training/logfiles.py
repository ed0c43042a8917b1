"""Reading worker log files: whole, the tail, or followed live until the job ends."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

TAIL_BYTES = 64 * 1024


def _prefix(rank: int, many: bool) -> str:
    return f"[rank {rank}] " if many else ""


def read_lines(paths: list[Path]) -> Iterator[str]:
    """Every line of every worker log, worker by worker, prefixed by the rank when there are several."""
    many = len(paths) > 1
    for rank, path in enumerate(paths):
        if path.is_file():
            with path.open(encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    yield _prefix(rank, many) + line.rstrip("\n")


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of ``path`` ('' when it does not exist)."""
    if not path.is_file():
        return ""
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(max(0, size - TAIL_BYTES))
        text = handle.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def follow(paths: list[Path], ended: Callable[[], bool], poll: float = 0.2) -> Iterator[str]:
    """Yield log lines as workers write them; stop once ``ended()`` is true and all is read."""
    many = len(paths) > 1
    offsets = [0] * len(paths)
    partial = [""] * len(paths)
    while True:
        done = ended()
        for rank, path in enumerate(paths):
            if not path.is_file():
                continue
            with path.open("rb") as handle:
                handle.seek(offsets[rank])
                chunk = handle.read()
            offsets[rank] += len(chunk)
            *complete, partial[rank] = (partial[rank] + chunk.decode("utf-8", errors="replace")).split("\n")
            for line in complete:
                yield _prefix(rank, many) + line
        if done:
            for rank, rest in enumerate(partial):
                if rest:
                    yield _prefix(rank, many) + rest
            return
        time.sleep(poll)
