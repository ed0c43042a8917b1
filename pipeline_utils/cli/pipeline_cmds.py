"""``pipeline run``: the master notebook, headless."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline_utils.cli.output import emit_record, emit_table, note
from pipeline_utils.errors import PipelineError
from pipeline_utils.notebooks import get_run, run_notebook
from pipeline_utils.notebooks.pipeline import project_path

MASTER = "A_MLOps_Pipeline"


@click.group()
def pipeline() -> None:
    """Run the whole pipeline (the master notebook) headless."""


@pipeline.command("run")
@click.option("--path-yml", required=True, type=click.Path(path_type=Path), help="Draft deployment-metadata YAML.")
@click.option("--path-model", type=click.Path(path_type=Path), default=Path("examples/model"), show_default=True)
@click.option("--path-dependency", type=click.Path(path_type=Path), default=Path("examples/deployment"),
              show_default=True)
@click.option("--report-mode", is_flag=True, help="Hide code cells in the executed notebooks.")
@click.option("--cell-timeout", type=float, default=600, show_default=True, help="Seconds a cell may run.")
@click.option("--json", "as_json", is_flag=True, help="Print the run record as JSON.")
def run_command(path_yml: Path, path_model: Path, path_dependency: Path, report_mode: bool, cell_timeout: float,
                as_json: bool) -> None:
    """Draft/validate the metadata, stage the assets and run the pipeline notebooks; exit 0 only on success."""
    parameters = {
        "PATH_YML": str(project_path(path_yml)),
        "PATH_MODEL": str(project_path(path_model)),
        "PATH_DEPENDENCY": str(project_path(path_dependency)),
        "REPORT_MODE": report_mode,
        "FORCE": True,
    }
    note(f"running {MASTER} ...")
    result = run_notebook(MASTER, parameters, kind="pipeline", report_mode=report_mode, cell_timeout=cell_timeout)
    run = get_run(result.run_id)
    if as_json:
        from dataclasses import asdict

        emit_record({**asdict(run), "folder": str(run.folder)}, as_json=True)
    else:
        rows = [{"notebook": nb.notebook, "status": nb.status, "seconds": f"{nb.duration_s or 0:.1f}",
                 "error": nb.error} for nb in run.notebooks]
        emit_table(rows, ["notebook", "status", "seconds", "error"], as_json=False, title=f"run {run.id}")
        note(f"executed notebooks: {run.folder}")
    if not result.ok:
        raise PipelineError(result.error)
