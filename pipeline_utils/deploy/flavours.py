"""Kernel flavours, recognised from the deployment folder: EDI kernels, estimators, scoring scripts.

One rule for every target: the submission check, the local runtime and other serving targets ask here.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeline_utils.errors import BadInput

FLAVOURS = ("edi", "sklearn", "scoring")
ESTIMATOR_CONFIGS = ("config.yaml", "config.yml", "config.json")
MODEL_SUFFIXES = (".joblib", ".pkl", ".pickle")
MODEL_FOLDER = "model"


def detect(folder: Path, kernel_filename: str = "kernel.py") -> tuple[str, str]:
    """The flavour of a deployment folder and its entry file (relative to the folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInput(f"deployment folder {folder} does not exist", field="--path-dependency")
    kernel = folder / kernel_filename
    if kernel.is_file():
        text = kernel.read_text(errors="replace")
        if re.search(r"^\s*(from|import)\s+redhareapi", text, re.M):
            return "edi", kernel_filename
        if _is_scoring(text):
            return "scoring", kernel_filename
    config = next((folder / c for c in ESTIMATOR_CONFIGS if (folder / c).is_file()), None)
    if config is not None:
        return "sklearn", config.name
    for script in sorted(folder.glob("*.py")):
        if _is_scoring(script.read_text(errors="replace")):
            return "scoring", script.name
    raise BadInput(
        f"{folder}: no deployment kernel found: expected {kernel_filename} (an EDI kernel or a scoring "
        f"script with init() and run()), or an estimator config ({', '.join(ESTIMATOR_CONFIGS)})"
    )


def _is_scoring(text: str) -> bool:
    return bool(re.search(r"^def\s+init\s*\(", text, re.M) and re.search(r"^def\s+run\s*\(", text, re.M))
