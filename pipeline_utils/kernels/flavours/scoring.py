"""The scoring-script flavour (seed 004): a script with ``init()`` and ``run(raw_data)``."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from pipeline_utils.kernels import handlers, ipc
from pipeline_utils.kernels.flavours import MODEL_FOLDER


class ScoringHandler:
    """Calls ``init()`` once, then ``run(raw_data)`` with each request body as text (too deep JSON is refused first)."""

    batch_limit = 1

    def __init__(self, script: Path, custom_args: dict[str, str]) -> None:
        self.script = script
        self.custom_args = custom_args

    def start(self) -> None:
        staged_model = self.script.parent / MODEL_FOLDER
        model_dir = staged_model if staged_model.is_dir() else self.script.parent
        os.environ.setdefault("AZUREML_MODEL_DIR", str(model_dir))
        sys.path.insert(0, str(self.script.parent))
        spec = importlib.util.spec_from_file_location(self.script.stem, self.script)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {self.script}")
        module = importlib.util.module_from_spec(spec)
        module.__dict__.update(self.custom_args)
        sys.modules[self.script.stem] = module
        spec.loader.exec_module(module)
        self.run = module.run
        module.init()

    def handle(self, batch: list[tuple[int, int, bytes]]) -> list[bytes]:
        replies = []
        for rid, _, body in batch:
            refusal = handlers.refuse_deep(rid, body)
            if refusal is not None:
                replies.append(refusal)
                continue
            try:
                result: Any = self.run(body.decode("utf-8", errors="replace"))
                data = (
                    result
                    if isinstance(result, bytes)
                    else (result.encode() if isinstance(result, str) else json.dumps(result, default=str).encode())
                )
                replies.append(ipc.pack(rid, ipc.RESULT, data))
            except Exception as exc:
                traceback.print_exc()
                error = handlers.error_body(f"run() raised {type(exc).__name__}: {handlers.one_line(exc)}")
                replies.append(ipc.pack(rid, ipc.KERNEL_ERROR, error))
        return replies

    def shutdown(self) -> None:
        pass
