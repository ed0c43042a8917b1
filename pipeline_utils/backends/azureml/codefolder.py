"""A deployment's ``code/`` and ``model/`` folders for Azure ML, built from its pinned assets.

``code/`` holds the generated ``score.py``, ``mlops_deployment.json`` (name, flavour, entry file), the deployment's
own files under ``deployment/`` (the submission folder the local runtime serves, without its model) and a copy of
the project modules the flavours need under ``pipeline_utils/`` (:data:`VENDORED`): Azure ML uploads the code
folder as it is, so the scoring container needs no install of this project. ``model/`` is the model as the local
runtime stages it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pipeline_utils
from pipeline_utils.backends.azureml import adapter
from pipeline_utils.deploy.base import ExportedDeployment
from pipeline_utils.deploy.flavours import detect
from pipeline_utils.deploy.submission import MODEL_FOLDER, edi_submission

SCORING_SCRIPT = "score.py"
REQUIREMENTS = "requirements.txt"
PACKAGE = Path(pipeline_utils.__file__).resolve().parent
VENDORED = (
    "__init__.py",
    "errors.py",
    "jsondepth.py",
    "oip.py",
    "deploy/__init__.py",
    "deploy/flavours.py",
    "backends/__init__.py",
    "backends/azureml/__init__.py",
    "backends/azureml/adapter.py",
    "kernels/__init__.py",
    "kernels/handlers.py",
    "kernels/ipc.py",
    "kernels/flavours/__init__.py",
    "kernels/flavours/estimator.py",
    "kernels/flavours/scoring.py",
    "kernels/shims/redhareapi.py",
    "kernels/shims/redhareapiversion.py",
)


@dataclass(frozen=True)
class CodeFolder:
    """What was written for one deployment: its folders, flavour, entry file and the pip requirements it ships."""

    code: Path
    model: Path
    flavour: str
    entry: str
    requirements: tuple[str, ...]


def vendor(code: Path) -> None:
    """Copy the project modules the flavours import into ``code/pipeline_utils``."""
    for relative in VENDORED:
        target = code / "pipeline_utils" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PACKAGE / relative, target)


def requirements_of(folder: Path) -> tuple[str, ...]:
    """The requirement lines of the deployment's own ``requirements.txt`` (comments and blanks left out)."""
    path = folder / REQUIREMENTS
    if not path.is_file():
        return ()
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return tuple(line for line in lines if line)


def write_code_folder(deployment: ExportedDeployment, dest: Path) -> CodeFolder:
    """Write ``dest/code`` and ``dest/model`` for ``deployment``; BadInput when its assets make no deployment."""
    code, model = dest / "code", dest / MODEL_FOLDER
    with tempfile.TemporaryDirectory(prefix="mlops-azureml-") as work:
        submission = edi_submission(
            deployment.name, deployment.assets, Path(work), kernel_filename=deployment.kernel_filename
        )
        flavour, entry = detect(submission, deployment.kernel_filename)
        shutil.copytree(submission / MODEL_FOLDER, model)
        shutil.copytree(submission, code / adapter.DEPLOYMENT_FOLDER, ignore=_top_model_folder(submission))
        requirements = requirements_of(submission)
    shutil.copyfile(Path(__file__).with_name(SCORING_SCRIPT), code / SCORING_SCRIPT)
    sidecar = {"name": deployment.name, "flavour": flavour, "entry": entry}
    (code / adapter.SIDECAR).write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
    vendor(code)
    return CodeFolder(code, model, flavour, entry, requirements)


def _top_model_folder(root: Path):
    """A copytree filter leaving out ``root/model`` (the model goes to its own folder)."""

    def ignore(folder: str, names: list[str]) -> list[str]:
        return [MODEL_FOLDER] if Path(folder) == root and MODEL_FOLDER in names else []

    return ignore
