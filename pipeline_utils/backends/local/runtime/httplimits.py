"""The bounds of the runtime's HTTP server: one frozen :class:`Limits`, read from ``MLOPS_RUNTIME_*`` in one place."""

from __future__ import annotations

import contextlib
import math
import os
import resource
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from pipeline_utils.errors import BadInput

SETTING_PREFIX = "MLOPS_RUNTIME_"
SPARE_FILES = 256
"""File descriptors kept free beyond ``max_connections`` for kernels' channels, logs and the state database."""


def setting_name(field_name: str) -> str:
    """The environment variable of a :class:`Limits` field: ``max_connections`` -> ``MLOPS_RUNTIME_MAX_CONNECTIONS``."""
    return SETTING_PREFIX + field_name.upper()


def _checked(value: Any, kind: type, name: str) -> int | float:
    """``value`` as a whole number >= 1 (``kind`` int) or a number of seconds > 0 (float); else a one-line error."""
    number: Any = value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = int(value) if kind is int else float(value)
    if kind is int:
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise BadInput(f"{value!r} is not a whole number >= 1", field=name)
        return number
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number) or number <= 0:
        raise BadInput(f"{value!r} is not a number of seconds > 0", field=name)
    return float(number)


@dataclass(frozen=True)
class Limits:
    """Every bound of the HTTP server with its default; ``from_environment`` is the one place settings are read."""

    max_url_bytes: int = 8192
    """Longest request URL; a longer one is answered 414 and the connection closed."""
    max_head_bytes: int = 65536
    """Largest request head (request line and headers); a larger one is answered 431 and the connection closed."""
    max_headers: int = 100
    """Most header lines in a request; more are answered 431."""
    header_timeout: float = 10.0
    """Seconds a request head may take to arrive whole, from its first byte, then 408 and close (slowloris); also
    how long a new connection may stay silent before it is closed."""
    keepalive_timeout: float = 60.0
    """Seconds a keep-alive connection stays open idle after an answer."""
    stall_timeout: float = 60.0
    """Seconds a request body may pause, or a client leave its answers unread, before the connection is closed."""
    max_connections: int = 1024
    """Open connections; beyond it the longest-idle one is closed to make room, or the new one answered 503."""
    max_pipelined: int = 32
    """Requests received but not yet answered on one connection before reading from it pauses."""
    write_buffer_bytes: int = 262144
    """Unsent answer bytes on one connection before its requests stop being read and handled."""
    shutdown_timeout: float = 10.0
    """Seconds given at shutdown to answer the requests already received before their connections are closed."""

    def __post_init__(self) -> None:
        for item in fields(self):
            _checked(getattr(self, item.name), type(item.default), item.name)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """The defaults, each overridden by its ``MLOPS_RUNTIME_<FIELD>`` variable when set (a bad one: BadInput)."""
        environ = os.environ if environ is None else environ
        values = {}
        for item in fields(cls):
            name = setting_name(item.name)
            raw = environ.get(name, "").strip()
            if raw:
                values[item.name] = _checked(raw, type(item.default), name)
        return cls(**values)


def ensure_open_files(needed: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards ``needed`` (at most to the hard limit); the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return needed if soft == resource.RLIM_INFINITY else soft
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def connection_cap(limits: Limits) -> int:
    """``max_connections``, lowered (and said on stderr) when the open-file limit cannot hold that many."""
    files = ensure_open_files(limits.max_connections + SPARE_FILES)
    cap = max(1, min(limits.max_connections, files - SPARE_FILES))
    if cap < limits.max_connections:
        print(
            f"mlops runtime: {setting_name('max_connections')} lowered from {limits.max_connections} to {cap}:"
            f" the open-file limit is {files}",
            file=sys.stderr,
            flush=True,
        )
    return cap
