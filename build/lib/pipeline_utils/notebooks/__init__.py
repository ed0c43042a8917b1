"""Running pipeline notebooks with papermill, and reading back what they ran and recorded."""

from pipeline_utils.notebooks.runner import (
    NOTEBOOKS_DIR,
    NotebookResult,
    notebook_path,
    read_scraps,
    run_notebook,
)
from pipeline_utils.notebooks.runs import RunRecord, get_run, list_runs, runs_dir

__all__ = [
    "NOTEBOOKS_DIR",
    "NotebookResult",
    "RunRecord",
    "get_run",
    "list_runs",
    "notebook_path",
    "read_scraps",
    "run_notebook",
    "runs_dir",
]
