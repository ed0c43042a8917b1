"""Pieces shared by the commands that run a pipeline notebook (``train submit``, ``deploy create``, ...)."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from pipeline_utils.cli.output import note
from pipeline_utils.errors import BadInput, NotFound, PipelineError
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


def _training_jobs_of(run_id: str) -> list[str]:
    """The training jobs the notebooks of a run recorded (A1 records its job id once the job is prepared)."""
    from pipeline_utils.notebooks import get_run, read_scraps

    jobs: list[str] = []
    for notebook in get_run(run_id).notebooks:
        try:
            job_id = read_scraps(notebook.path).get("job_id")
        except PipelineError:
            continue
        if job_id and job_id not in jobs:
            jobs.append(job_id)
    return jobs


def _job_after_interrupt(job_id: str, prog_name: str) -> str:
    from pipeline_utils.training import training_runner

    try:
        info = training_runner().get(job_id)
    except NotFound:
        return f"training job {job_id} was not submitted"
    if info.status.is_final:
        return f"training job {job_id} had already ended ({info.status.value})"
    return f"training job {job_id} keeps running (detached): stop it with '{prog_name} train stop {job_id}'"


def interrupted_line(cause: KeyboardInterrupt, prog_name: str) -> str:
    """The one line shown on Ctrl-C: ``interrupted``, and whether a training job the run started keeps running."""
    run_id = getattr(cause, "run_id", None)
    if not run_id:
        return "interrupted"
    try:
        jobs = [_job_after_interrupt(job_id, prog_name) for job_id in _training_jobs_of(run_id)]
    except Exception as exc:  # the line must still be printed, whatever the lookup meets
        jobs = [f"cannot tell whether a training job keeps running ({type(exc).__name__}: {exc})"]
    return "; ".join([f"interrupted (run {run_id})", *jobs])


def parse_pairs(pairs: tuple[str, ...], option: str) -> dict[str, str]:
    """``K=V`` options into a dict; the value is never echoed in an error (it may be a secret)."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip() or not name.strip().isidentifier():
            raise BadInput(f"expected NAME=VALUE with NAME a valid identifier (got {name.strip()!r})", field=option)
        parsed[name.strip()] = value
    return parsed
