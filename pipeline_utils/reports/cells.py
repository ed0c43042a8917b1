"""Reading executed notebooks for a report: which code is hidden, and the cell a failed notebook stopped at."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pipeline_utils.errors import PipelineError

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour and cursor codes (tracebacks are stored coloured)."""
    return _ANSI.sub("", text)


def read_notebook(path: str | Path):
    """An executed notebook (nbformat 4); a missing or unreadable copy is a PipelineError naming it."""
    import nbformat

    try:
        return nbformat.read(str(path), as_version=4)
    except (OSError, ValueError) as exc:
        raise PipelineError(f"{path}: cannot read the executed notebook ({exc})") from None


def source_hidden(cell, report_mode: bool) -> bool:
    """A code cell's input stays out of the report in report mode, and wherever the run marked it hidden."""
    if cell.get("cell_type") != "code":
        return False
    return report_mode or bool(cell.get("metadata", {}).get("jupyter", {}).get("source_hidden"))


@dataclass(frozen=True)
class FailedCell:
    """Where a failed notebook stopped: the cell's number and source (None when hidden) and its error text."""

    execution_count: int | None
    source: str | None
    error: str | None


def _error_text(cell) -> str | None:
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    if not errors:
        return None
    parts = []
    for output in errors:
        lines = output.get("traceback") or [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        parts.append(strip_ansi("\n".join(lines)))
    return "\n\n".join(parts)


def failed_cell(notebook, report_mode: bool) -> FailedCell | None:
    """The cell that raised (an error output, or papermill's mark on a cell that timed out or lost its kernel)."""
    for cell in notebook.cells:
        if cell.get("cell_type") != "code":
            continue
        error = _error_text(cell)
        marked = cell.get("metadata", {}).get("papermill", {}).get("exception")
        if error is not None or marked:
            source = None if source_hidden(cell, report_mode) else cell.get("source", "")
            return FailedCell(cell.get("execution_count"), source, error)
    return None
