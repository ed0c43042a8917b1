"""Process identity and process-group signalling, safe against pid reuse."""

from __future__ import annotations

import contextlib
import os
import signal

import psutil


def start_time(pid: int) -> float:
    """The start time of process ``pid`` (with the pid, it names one process for good)."""
    return psutil.Process(pid).create_time()


def is_alive(pid: int | None, started: float | None) -> bool:
    """True when ``pid`` runs and is the same process that started at ``started`` (not a zombie)."""
    if not pid or started is None:
        return False
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - started) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def group_exists(pgid: int) -> bool:
    """True while any process remains in process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pgid: int, signum: int = signal.SIGTERM) -> None:
    """Send ``signum`` to process group ``pgid``; an empty group is not an error."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


