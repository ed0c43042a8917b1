"""Stand-in for WMLA EDI's ``redhareapi`` module, so unmodified EDI kernels run in the local runtime.

Kernels subclass :class:`Kernel`, implement ``on_kernel_start``, ``on_task_invoke`` and
``on_kernel_shutdown``, and call ``Kernel().run()`` under ``__main__``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from pipeline_utils.kernels import handlers, ipc


def _log(level: str, message: Any) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} {level} [{os.environ.get('MSD_POD_NAME', '')}] {message}", file=sys.stderr, flush=True)


class KernelContext:
    """What ``on_kernel_start`` receives: the deployment's model description and identity."""

    def get_model_description(self) -> str:
        """The deployment's ``model.json`` as a JSON string, with ``model_path`` filled in."""
        path = Path(os.environ.get("REDHARE_MODEL_PATH", "."))
        description: dict[str, Any] = {}
        if (path / "model.json").is_file():
            description = json.loads((path / "model.json").read_text())
        description["name"] = os.environ.get("REDHARE_MODEL_NAME", description.get("name", ""))
        description["model_path"] = str(path)
        return json.dumps(description)

    def get_instance_id(self) -> str:
        """The kernel's pod name."""
        return os.environ.get("MSD_POD_NAME", "")

    def get_model_name(self) -> str:
        """The deployment name."""
        return os.environ.get("REDHARE_MODEL_NAME", "")


class TaskContext:
    """One task of a batch; ``next()`` returns the following task, or ``None`` after the last."""

    def __init__(self, tasks: list[dict[str, Any]], index: int = 0) -> None:
        self._tasks = tasks
        self._index = index

    @property
    def _task(self) -> dict[str, Any]:
        return self._tasks[self._index]

    def __bool__(self) -> bool:
        return self._index < len(self._tasks)

    def get_input_data(self) -> str:
        """The request body as text."""
        return self._task["input"].decode("utf-8", errors="replace")

    def get_input_bytes(self) -> bytes:
        """The request body as bytes."""
        return self._task["input"]

    def set_output_data(self, data: str | bytes) -> None:
        """Set the response body of this task."""
        self._task["output"] = data if isinstance(data, bytes) else str(data).encode("utf-8")

    def get_id(self) -> str:
        """The task id."""
        return str(self._task["id"])

    def get_session_id(self) -> str:
        """The session id (the kernel's pod name here)."""
        return os.environ.get("MSD_POD_NAME", "")

    def get_model_name(self) -> str:
        """The deployment name."""
        return os.environ.get("REDHARE_MODEL_NAME", "")

    def next(self) -> TaskContext | None:
        """Advance to the next task of the batch: returns it, or ``None`` (and becomes falsy) at the end."""
        self._index += 1
        return self if self._index < len(self._tasks) else None


class EdiHandler:
    """An EDI kernel as a flavour handler (what a host starts and sends task batches to)."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.batch_limit = int(os.environ.get("MLOPS_KERNEL_BATCH") or 1)

    def start(self) -> None:
        self.kernel.on_kernel_start(KernelContext())

    def handle(self, batch: list[tuple[int, int, bytes]]) -> list[bytes]:
        refused = {rid: frame for rid, _, body in batch if (frame := handlers.refuse_deep(rid, body)) is not None}
        tasks: list[dict[str, Any]] = [
            {"id": rid, "input": body, "output": None} for rid, _, body in batch if rid not in refused
        ]
        missing = handlers.error_body("kernel error: on_task_invoke set no output for this task")
        if tasks:
            try:
                self.kernel.on_task_invoke(TaskContext(tasks))
            except Exception as exc:
                _log("ERROR", f"on_task_invoke raised {type(exc).__name__}: {exc}")
                missing = handlers.error_body(f"kernel error: {type(exc).__name__}: {handlers.one_line(exc)}")
        answered = {
            t["id"]: ipc.pack(t["id"], ipc.RESULT, t["output"])
            if t["output"] is not None
            else ipc.pack(t["id"], ipc.KERNEL_ERROR, missing)
            for t in tasks
        }
        return [refused.get(rid) or answered[rid] for rid, _, _ in batch]

    def shutdown(self) -> None:
        self.kernel.on_kernel_shutdown()


class Kernel:
    """Base class of EDI kernels."""

    def on_kernel_start(self, kernel_context: KernelContext) -> None:
        """Called once when the kernel starts (load the model here)."""

    def on_task_invoke(self, task_context: TaskContext) -> None:
        """Called for each batch of tasks."""

    def on_kernel_shutdown(self) -> None:
        """Called once before the kernel stops."""

    def run(self) -> None:
        """Serve tasks from the runtime until the kernel is stopped."""
        handlers.serve(EdiHandler(self))

    @staticmethod
    def log_info(message: Any) -> None:
        """Log an info message to the kernel log."""
        _log("INFO", message)

    @staticmethod
    def log_error(message: Any) -> None:
        """Log an error message to the kernel log."""
        _log("ERROR", message)

    @staticmethod
    def log_debug(message: Any) -> None:
        """Log a debug message to the kernel log."""
        _log("DEBUG", message)

    @staticmethod
    def log_warn(message: Any) -> None:
        """Log a warning to the kernel log."""
        _log("WARN", message)
