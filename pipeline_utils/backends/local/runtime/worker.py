"""A kernel worker process: runs one deployment kernel and answers the daemon's frames.

Started by the daemon as ``python -m pipeline_utils.backends.local.runtime.worker`` with the socket fd,
the flavour and the kernel file in its environment. Custom-arg values arrive only as
environment variables and become module-level names of the kernel.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from pipeline_utils.backends.local.runtime import ipc
from pipeline_utils.jsondepth import MAX_DEPTH, too_deep

SHIMS = Path(__file__).resolve().parent / "shims"


class Handler(Protocol):
    """What a flavour implements to serve tasks."""

    batch_limit: int

    def start(self) -> None: ...

    def handle(self, batch: list[tuple[int, int, bytes]]) -> list[bytes]: ...

    def shutdown(self) -> None: ...


def custom_args() -> dict[str, str]:
    """The deployment's custom args, read from the environment by the names the daemon passed."""
    names = [n for n in os.environ.get("MLOPS_CUSTOM_ARG_NAMES", "").split(",") if n]
    return {name: os.environ.get(name, "") for name in names}


def error_body(message: str) -> bytes:
    """A JSON error body."""
    return json.dumps({"error": message}).encode()


def one_line(exc: BaseException) -> str:
    """An exception's message on one line, for an error body."""
    return " ".join(str(exc).split()) or type(exc).__name__


def refuse_deep(rid: int, body: bytes) -> bytes | None:
    """A 400 frame for a JSON body nested deeper than ``MAX_DEPTH`` (parsing it would exhaust the stack), else None."""
    if not too_deep(body):
        return None
    return ipc.pack(rid, ipc.BAD_INPUT, error_body(f"the request body is JSON nested deeper than {MAX_DEPTH} levels"))


def answer(handler: Handler, tasks: list[tuple[int, int, bytes]]) -> list[bytes]:
    """The handler's replies to ``tasks``; if it raises, each task gets a 500 and the kernel goes on serving."""
    try:
        return handler.handle(tasks)
    except Exception as exc:  # noqa: BLE001 - no request may take the kernel down
        traceback.print_exc()
        body = error_body(f"kernel error: {type(exc).__name__}: {one_line(exc)}")
        return [ipc.pack(rid, ipc.KERNEL_ERROR, body) for rid, _, _ in tasks]


def serve(handler: Handler) -> None:
    """Start the handler, report readiness, then answer frames until shutdown or EOF."""
    channel = _channel()
    try:
        handler.start()
    except BaseException as exc:
        traceback.print_exc()
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        channel.send([ipc.pack(0, ipc.START_FAILED, message.encode())])
        sys.stderr.flush()
        os._exit(1)
    channel.send([ipc.pack(0, ipc.READY)])
    while True:
        try:
            batch = channel.receive(handler.batch_limit)
        except EOFError:
            break
        tasks = [frame for frame in batch if frame[1] != ipc.SHUTDOWN]
        if tasks:
            channel.send(answer(handler, tasks))
        if len(tasks) != len(batch):
            break
    try:
        handler.shutdown()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


_CHANNEL: ipc.Channel | None = None


def _channel() -> ipc.Channel:
    global _CHANNEL
    if _CHANNEL is None:
        fd = os.environ.get("MLOPS_KERNEL_FD")
        if fd is None:
            raise RuntimeError("this kernel runs inside the mlops runtime only (no MLOPS_KERNEL_FD)")
        _CHANNEL = ipc.Channel(socket.socket(fileno=int(fd)))
    return _CHANNEL


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _apply_limits() -> None:
    cpus = os.environ.get("MLOPS_KERNEL_CPUS")
    if cpus and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
        except OSError as exc:
            print(f"runtime: CPU affinity not applied: {exc}", file=sys.stderr)
    memory_mb = int(os.environ.get("MLOPS_KERNEL_MEMORY_MB") or 0)
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        try:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ValueError, OSError) as exc:
            print(f"runtime: memory limit not applied: {exc}", file=sys.stderr)


def _run_edi(kernel_file: Path) -> None:
    import runpy

    sys.path[:0] = [str(SHIMS), str(kernel_file.parent)]
    runpy.run_path(str(kernel_file), init_globals=custom_args(), run_name="__main__")
    raise RuntimeError(f"{kernel_file.name} did not call Kernel.run() under __main__")


PRELOAD = "numpy,joblib,yaml,sklearn.linear_model"


def _wait_for_assignment() -> None:
    """As a warm spare: import common modules, then take the kernel's environment and log from the daemon."""
    import contextlib
    import importlib

    for module in (os.environ.get("MLOPS_RUNTIME_PRELOAD") or PRELOAD).split(","):
        with contextlib.suppress(Exception):
            importlib.import_module(module.strip())
    try:
        (_, _, body), *_ = _channel().receive(1)
    except EOFError:
        os._exit(0)
    spec = json.loads(body)
    os.environ.pop("MLOPS_KERNEL_SPARE", None)
    os.environ.update(spec["env"])
    fd = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def main() -> None:
    """Entry point of a worker process (a warm spare first waits for its assignment)."""
    _die_with_parent()
    if os.environ.get("MLOPS_KERNEL_SPARE"):
        _wait_for_assignment()
    _apply_limits()
    flavour = os.environ["MLOPS_KERNEL_FLAVOUR"]
    kernel_file = Path(os.environ["MLOPS_KERNEL_FILE"])
    os.chdir(os.environ.get("REDHARE_MODEL_PATH") or kernel_file.parent)
    runners: dict[str, Callable[[], Any]] = {
        "edi": lambda: _run_edi(kernel_file),
        "sklearn": lambda: serve(_estimator_handler(kernel_file)),
        "scoring": lambda: serve(_scoring_handler(kernel_file)),
    }
    try:
        runners[flavour]()
    except BaseException as exc:
        traceback.print_exc()
        message = f"{type(exc).__name__}: {exc}"
        try:
            _channel().send([ipc.pack(0, ipc.START_FAILED, message.encode())])
        finally:
            os._exit(1)


def _estimator_handler(folder: Path) -> Handler:
    from pipeline_utils.backends.local.runtime.flavours.estimator import EstimatorHandler

    return EstimatorHandler(folder)


def _scoring_handler(script: Path) -> Handler:
    from pipeline_utils.backends.local.runtime.flavours.scoring import ScoringHandler

    return ScoringHandler(script, custom_args())


if __name__ == "__main__":
    main()
