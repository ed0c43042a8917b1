"""One exported deployment served behind Azure ML's ``init()``/``run()``, by the local runtime's own flavour code.

The generated ``score.py`` calls :class:`Scorer`. This module runs where the project is not installed: the export
copies it, and the modules it imports, into the deployment's ``code/`` folder (see ``codefolder.VENDORED``).
Each request goes through the flavour handler as one task frame, exactly as the runtime's kernel worker would
pass it; the answer frame becomes ``run()``'s result, or an error with the runtime's HTTP status.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pipeline_utils.kernels import handlers

SIDECAR = "mlops_deployment.json"
DEPLOYMENT_FOLDER = "deployment"
MODEL_FOLDER = "model"


class ScoringError(RuntimeError):
    """A request the deployment refused (400) or failed on (500), as the local runtime would answer it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def model_folder() -> Path:
    """The model: Azure mounts the exported ``model/`` folder under ``$AZUREML_MODEL_DIR``; the local runtime's
    scoring flavour points ``$AZUREML_MODEL_DIR`` at it directly."""
    root = os.environ.get("AZUREML_MODEL_DIR")
    if not root:
        raise RuntimeError("AZUREML_MODEL_DIR is not set: run this score.py in Azure ML or the mlops runtime")
    return Path(root) / MODEL_FOLDER if (Path(root) / MODEL_FOLDER).is_dir() else Path(root)


def working_folder(code: Path, model: Path) -> Path:
    """The deployment folder the flavours expect, its files and ``model/`` linked into a new temporary folder."""
    work = Path(tempfile.mkdtemp(prefix="mlops-deployment-"))
    for item in sorted((code / DEPLOYMENT_FOLDER).iterdir()):
        (work / item.name).symlink_to(item.resolve())
    (work / MODEL_FOLDER).symlink_to(model.resolve())
    return work


def decoded(body: bytes) -> Any:
    """An answer body as ``run()`` returns it: parsed JSON (the scoring server encodes it again), else text."""
    text = body.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


class Scorer:
    """Serves the deployment described by ``code/mlops_deployment.json`` (name, flavour, entry file)."""

    def __init__(self, code: Path) -> None:
        spec = json.loads((code / SIDECAR).read_text())
        self.code, self.name, self.flavour, self.entry = code, spec["name"], spec["flavour"], spec["entry"]
        self.handler: handlers.Handler | None = None

    def start(self) -> None:
        """Set the kernel environment the local runtime gives a kernel, then start the flavour (loads the model)."""
        model = model_folder()
        work = working_folder(self.code, model)
        os.environ.update(
            {"AZUREML_MODEL_DIR": str(model), "REDHARE_MODEL_PATH": str(work), "REDHARE_MODEL_NAME": self.name}
        )
        os.environ.setdefault("MSD_POD_NAME", f"{self.name}-{os.getpid()}")
        os.environ.setdefault("MLOPS_KERNEL_BATCH", "1")
        os.chdir(work)
        self.handler = handlers.flavour_handler(self.flavour, work / self.entry)
        self.handler.start()

    def score(self, raw_data: str | bytes) -> Any:
        """One request body through the flavour; its answer, or ScoringError with the runtime's status."""
        if self.handler is None:
            raise RuntimeError("init() has not run")
        body = raw_data if isinstance(raw_data, bytes) else str(raw_data).encode("utf-8")
        status, answer = handlers.answer_one(self.handler, body)
        if status == 200:
            return decoded(answer)
        message = decoded(answer)
        raise ScoringError(status, message.get("error", "") if isinstance(message, dict) else message)


def respond(scorer: Scorer | None, raw_data: str | bytes) -> Any:
    """``run()``'s result: the answer, or an error response with the runtime's status where the Azure ML scoring
    server offers one (``AMLResponse``); elsewhere the error is raised (the local runtime answers it with a 500)."""
    if scorer is None:
        raise RuntimeError("init() has not run")
    try:
        return scorer.score(raw_data)
    except ScoringError as exc:
        try:
            from azureml.contrib.services.aml_response import AMLResponse
        except ImportError:
            raise exc from None
        return AMLResponse(json.dumps({"error": str(exc)}), exc.status, json_str=True)
