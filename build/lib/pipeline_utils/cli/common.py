"""Pieces shared by the commands that run a pipeline notebook (``train submit``, ``deploy create``, ...)."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from pipeline_utils.cli.output import note
from pipeline_utils.errors import PipelineError
from pipeline_utils.notebooks import NotebookResult

save_notebook_option = click.option(
    "--save-notebook", is_flag=True, help="Also copy the executed notebook into the current folder."
)
report_mode_option = click.option("--report-mode", is_flag=True, help="Hide code cells in the executed notebook.")


def finish_notebook_command(result: NotebookResult, save_notebook: bool) -> None:
    """Say where the executed notebook is (copy it here if asked); fail with its one-line error."""
    note(f"executed notebook: {result.output_path} (run {result.run_id})")
    if save_notebook:
        target = Path.cwd() / result.output_path.name
        shutil.copyfile(result.output_path, target)
        note(f"saved a copy to {target}")
    if not result.ok:
        raise PipelineError(result.error)


def parse_pairs(pairs: tuple[str, ...], option: str) -> dict[str, str]:
    """``K=V`` options into a dict; the value is never echoed in an error (it may be a secret)."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip() or not name.strip().isidentifier():
            raise PipelineError(f"{option}: expected NAME=VALUE with NAME a valid identifier (got {name.strip()!r})")
        parsed[name.strip()] = value
    return parsed
