"""What a kernel flavour implements (:class:`Handler`) and how a host drives it: one task batch at a time, errors
turned into frames (and HTTP statuses), never into a dead kernel.

A host (the local runtime's kernel worker, a Ray Serve replica, Azure ML's ``score.py``) builds a handler with
:func:`flavour_handler`, starts it and answers with
:func:`answer` (frames) or :func:`answer_one` (one body, one status).
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from pipeline_utils.jsondepth import MAX_DEPTH, too_deep
from pipeline_utils.kernels import ipc

SHIMS = Path(__file__).resolve().parent / "shims"
"""The folder put first on an EDI kernel's ``sys.path``: the ``redhareapi`` shim the kernel imports."""


class Handler(Protocol):
    """What a flavour implements to serve tasks."""

    batch_limit: int

    def start(self) -> None: ...

    def handle(self, batch: list[tuple[int, int, bytes]]) -> list[bytes]: ...

    def shutdown(self) -> None: ...


STATUS_OF_FRAME = {ipc.RESULT: 200, ipc.BAD_INPUT: 400, ipc.KERNEL_ERROR: 500}
"""The HTTP status of each kind of answer frame (anything else: 500)."""

_TAKE: Callable[[Handler], None] | None = None


def serve(handler: Handler) -> None:
    """What an EDI kernel's ``Kernel.run()`` calls: hands its handler to :func:`edi_handler`, which is loading it."""
    if _TAKE is None:
        raise RuntimeError("this kernel runs inside an mlops host only (the runtime, a Ray replica, score.py)")
    _TAKE(handler)


def edi_handler(kernel_file: Path, values: Mapping[str, str] | None = None) -> Handler:
    """The handler of an EDI kernel: its file runs as ``__main__`` against the ``redhareapi`` shim, with ``values``
    (default: :func:`kernel_globals`) as module-level names, and the kernel its ``Kernel().run()`` starts is taken
    here, not served: the host serves it."""
    global _TAKE
    sys.path[:0] = [str(SHIMS), str(kernel_file.parent)]
    taken: list[Handler] = []
    _TAKE = taken.append
    try:
        runpy.run_path(str(kernel_file), init_globals=dict(kernel_globals() if values is None else values),
                       run_name="__main__")
    finally:
        _TAKE = None
    if len(taken) != 1:
        raise RuntimeError(f"{kernel_file.name} must call Kernel().run() once under __main__ (called {len(taken)})")
    return taken[0]


def kernel_globals() -> dict[str, str]:
    """The deployment's kernel settings and custom args, read from the environment by the names the host passed."""
    names = [n for n in os.environ.get("MLOPS_KERNEL_GLOBALS", "").split(",") if n]
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


def answer_one(handler: Handler, body: bytes, task_id: int = 1) -> tuple[int, bytes]:
    """The handler's answer to one request body: (HTTP status, body), as the local runtime answers it."""
    (frame,) = answer(handler, [(task_id, ipc.TASK, body)])
    ((_, kind, reply),) = ipc.FrameReader().feed(frame)
    return STATUS_OF_FRAME.get(kind, 500), reply


def flavour_handler(flavour: str, entry: Path, values: Mapping[str, str] | None = None) -> Handler:
    """The handler of a deployment for its entry file (EDI kernel file, estimator config, scoring script), not
    started; ``values`` are its kernel settings and custom args (default: :func:`kernel_globals`)."""
    if flavour == "edi":
        return edi_handler(entry, values)
    if flavour == "sklearn":
        from pipeline_utils.kernels.flavours.estimator import EstimatorHandler

        return EstimatorHandler(entry)
    if flavour == "scoring":
        from pipeline_utils.kernels.flavours.scoring import ScoringHandler

        return ScoringHandler(entry, dict(kernel_globals() if values is None else values))
    raise ValueError(f"unknown kernel flavour {flavour!r}")
