"""WMLA EDI kernel serving the example iris model (see README.md)."""

import json
import math
import os
from pathlib import Path

import redhareapiversion  # noqa: F401  (required by WMLA EDI)
from redhareapi import Kernel


def softmax(scores):
    """Probabilities from class scores."""
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


class MatchKernel(Kernel):
    def on_kernel_start(self, kernel_context):
        model_dir = Path(os.environ.get("MODEL_DIR") or Path(os.environ["REDHARE_MODEL_PATH"]) / "model")
        self.model = json.loads((model_dir / "model.json").read_text())
        Kernel.log_info(f"loaded model {self.model['name']} from {model_dir}")

    def on_task_invoke(self, task_context):
        try:
            request = json.loads(task_context.get_input_data())
            rows = request["instances"]
            width = len(self.model["features"])
            if not isinstance(rows, list) or any(not isinstance(r, list) or len(r) != width for r in rows):
                raise ValueError(f"'instances' must be a list of rows of {width} numbers")
            predictions = []
            for row in rows:
                scores = [b + sum(w * float(x) for w, x in zip(ws, row, strict=True))
                          for ws, b in zip(self.model["coef"], self.model["intercept"], strict=True)]
                probabilities = softmax(scores)
                best = max(range(len(probabilities)), key=probabilities.__getitem__)
                predictions.append({"label": self.model["classes"][best], "probabilities": probabilities})
            answer = {"status": "finished", "predictions": predictions}
        except Exception as exc:
            answer = {"status": "error", "msg": f"{type(exc).__name__}: {exc}"}
        task_context.set_output_data(json.dumps(answer))

    def on_kernel_shutdown(self):
        Kernel.log_info("kernel shutting down")


if __name__ == "__main__":
    MatchKernel().run()
