"""Example scoring script (seed 004 style): ``init()`` loads the model once, ``run()`` answers a request."""

import json
import os
from pathlib import Path

model = None


def init():
    """Load the linear model's weights from the model folder (``AZUREML_MODEL_DIR``, as on Azure ML)."""
    global model
    folder = Path(os.environ["AZUREML_MODEL_DIR"])
    model = json.loads((folder / "weights.json").read_text())


def run(raw_data):
    """Score ``{"data": [[x1, x2, x3], ...]}`` with the linear model."""
    try:
        rows = json.loads(raw_data)["data"]
        size = len(model["coef"])
        if any(len(row) != size for row in rows):
            return {"error": f"each row needs {size} values"}
        coef, intercept = model["coef"], model["intercept"]
        return {"predictions": [sum(w * x for w, x in zip(coef, row, strict=True)) + intercept for row in rows]}
    except (KeyError, TypeError, ValueError) as exc:
        return {"error": f"bad request: {exc}"}
