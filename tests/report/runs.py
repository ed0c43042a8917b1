"""Real runs for the report tests: small notebooks executed by the runner, and a monitor with a failed run."""

from __future__ import annotations

from pathlib import Path

import nbformat

from pipeline_utils.monitor import configure_monitors, run_monitors
from pipeline_utils.notebooks import NotebookResult, run_notebook
from tests.monitor.helpers import monitor_config, write_pairs

SECRET = "cpd-key-printed-by-a-notebook-8731"
SOURCE_MARKER = "code_is_shown_here"
DEPLOYMENT = "dep-report"
THRESHOLDS = {"IOU_positive": {"threshold": [0.4, "lower"]}, "precision": {"threshold": [50.0, "upper"]}}

RECORDING_CELLS = [
    ("markdown", "# A notebook under review\nSee [the docs](https://example.com/docs) "
                 "![logo](https://example.com/logo.png)"),
    ("code", "import os\nfrom pipeline_utils.notebooks.record import glue\n"
             f"{SOURCE_MARKER} = True\nglue('doubled', x * 2)\nglue('deployment_name', DEPLOYMENT_NAME)\n"
             "glue('summary', {'rows': 3, 'ok': True})\n"
             "print('visible output', os.environ['CPD_API_KEY'])"),
    ("code", "import io\nfrom PIL import Image as PILImage\nfrom IPython.display import HTML, Image, display\n"
             "buffer = io.BytesIO()\nPILImage.new('RGB', (4, 4), (200, 30, 10)).save(buffer, 'PNG')\n"
             "display(Image(buffer.getvalue()))\n"
             "display(HTML('<p>html output</p><img src=\"https://example.com/t.png\">"
             "<script src=\"https://cdn.example.com/x.js\"></script>'))"),
    ("code", "import pandas as pd\npd.DataFrame({'metric': ['f1'], 'value': [0.5]})"),
]
FAILING_CELLS = [
    ("code", "print('before the failure')"),
    ("code", "def explode():\n    raise ValueError('bad things happened')\n\nexplode()"),
    ("code", "print('never runs')"),
]


def make_notebook(path: Path, cells: list[tuple[str, str]], parameters: str) -> Path:
    """A notebook with a ``parameters`` cell, then the given (kind, source) cells."""
    first = nbformat.v4.new_code_cell(parameters)
    first.metadata["tags"] = ["parameters"]
    made = [first] + [
        nbformat.v4.new_markdown_cell(source) if kind == "markdown" else nbformat.v4.new_code_cell(source)
        for kind, source in cells
    ]
    notebook = nbformat.v4.new_notebook(cells=made)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


def monitored_deployment() -> None:
    """A segmentation monitor on DEPLOYMENT with two finished runs and a failed one (its predictions gone)."""
    root = write_pairs(["a.png", "b.png", "c.png"])
    configure_monitors(DEPLOYMENT, {"openscale_custom_metric_provider": {
        "segmentation_metrics": monitor_config(thresholds=THRESHOLDS)}})
    run_monitors(DEPLOYMENT)
    for name in ("a.png", "b.png"):
        (root / "eval/pred" / name).unlink()
    (failed,) = run_monitors(DEPLOYMENT)
    assert failed.state == "failed"


def recording_run(folder: Path) -> NotebookResult:
    """A succeeding run that records values, prints the CPD_API_KEY of its environment and names DEPLOYMENT."""
    source = make_notebook(folder / "recording.ipynb", RECORDING_CELLS, "x = 1\nDEPLOYMENT_NAME = ''")
    result = run_notebook(source, {"x": 21, "DEPLOYMENT_NAME": DEPLOYMENT})
    assert result.ok, result.error
    return result


def failing_run(folder: Path, **options: object) -> NotebookResult:
    """A run whose notebook raises in its fourth cell (the injected parameters are the second)."""
    source = make_notebook(folder / "failing.ipynb", FAILING_CELLS, "x = 1")
    result = run_notebook(source, {"x": 2}, **options)
    assert result.status == "failed"
    return result
