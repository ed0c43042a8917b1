"""``pipeline run``: the master notebook, headless; unattended-safe (no prompts, exit 0 only on success)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from pipeline_utils.cli.output import emit_record, note
from pipeline_utils.config.names import check_deployment_name
from pipeline_utils.errors import BadInput, PipelineError
from pipeline_utils.notebooks import get_run, read_scraps, run_notebook
from pipeline_utils.notebooks.pipeline import check_canary_steps, check_inputs, project_path

MASTER = "A_MLOps_Pipeline"
EXAMPLE_DEPENDENCY = Path("examples/ihc/ihc_kernel")
path_type = click.Path(path_type=Path)


def option_name(parameter: str) -> str:
    """The CLI option of a master-notebook input, e.g. ``path_yml`` -> ``--path-yml``."""
    return "--" + parameter.replace("_", "-")


@click.group()
def pipeline() -> None:
    """Run the whole pipeline (the master notebook) headless."""


@pipeline.command("run")
@click.option("--path-yml", type=path_type,
              help="Draft deployment-metadata YAML; required with --path-model (default when training the example: "
                   "drafted by the notebook from the example's settings).")
@click.option("--path-model", type=path_type, help="Model to deploy; without it, A1 trains one first.")
@click.option("--path-dependency", type=path_type,
              help="Deployment folder (kernel.py, README.md, ...); required with --path-model "
                   f"(default when training the example: {EXAMPLE_DEPENDENCY}).")
@click.option("--scripts-dir", default="examples/ihc", show_default=True, help="Training scripts (A1).")
@click.option("--main-file", default="training/train.py", show_default=True, help="Training main file (A1).")
@click.option("--eval-images", type=click.IntRange(min=0), default=8, show_default=True,
              help="Example images with ground truth written to the volume and predicted (0: none).")
@click.option("--endpoint", default="",
              help="Release the deployment as a canary on this endpoint (created if missing): attached at 0 %, "
                   "tested pinned, then given --canary-steps of the traffic.")
@click.option("--canary-steps", default="10,50,100", show_default=True, metavar="P,P,...",
              help="Percents of the endpoint's traffic the new deployment gets, step by step (with --endpoint).")
@click.option("--report-mode", is_flag=True, help="Hide code cells in the executed notebooks.")
@click.option("--cell-timeout", type=click.FloatRange(min=0, min_open=True), default=600, show_default=True,
              help="Seconds a cell may run.")
@click.option("--json", "as_json", is_flag=True, help="Print the run record as JSON.")
def run_command(path_yml, path_model, path_dependency, scripts_dir, main_file, eval_images, endpoint, canary_steps,
                report_mode, cell_timeout, as_json) -> None:
    """Train, stage, deploy, test, configure monitors and report their status; exit 0 only on success.

    Every input is checked first: a bad one is a one-line error naming its option, before anything runs.
    """
    if path_model is not None and path_dependency is None:
        raise BadInput("required with --path-model (the deployment folder of that model)", field="--path-dependency")
    if path_model is not None and path_yml is None:
        raise BadInput("required with --path-model (the draft metadata of that model)", field="--path-yml")
    path_dependency = path_dependency or EXAMPLE_DEPENDENCY
    if endpoint:
        check_deployment_name(endpoint, "--endpoint")
    steps = [int(p) if p.strip().isdecimal() else p for p in canary_steps.split(",")]
    steps = check_canary_steps(steps, "--canary-steps")
    check_inputs(train=path_model is None, scripts_dir=scripts_dir, main_file=main_file, path_model=path_model,
                 path_dependency=path_dependency, path_yml=path_yml, label=option_name)
    parameters = {
        "TRAIN": path_model is None,
        "SCRIPTS_DIR": scripts_dir,
        "MAIN_FILE": main_file,
        "PATH_MODEL": str(project_path(path_model)) if path_model else "",
        "PATH_DEPENDENCY": str(project_path(path_dependency)),
        "PATH_YML": str(project_path(path_yml)) if path_yml else "",
        "EVAL_IMAGES": eval_images,
        "ENDPOINT": endpoint,
        "CANARY_STEPS": steps,
        "REPORT_MODE": report_mode,
    }
    note(f"running {MASTER} ...")
    result = run_notebook(MASTER, parameters, kind="pipeline", report_mode=report_mode, cell_timeout=cell_timeout)
    run = get_run(result.run_id)
    scraps = read_scraps(result.output_path)
    if as_json:
        emit_record({**asdict(run), "folder": str(run.folder), "scraps": scraps}, as_json=True)
    else:
        for nb in run.notebooks:
            reason = f": {nb.error}" if nb.error else ""
            click.echo(f"{nb.notebook}: {nb.status} in {nb.duration_s or 0:.1f} s{reason}")
        if scraps.get("deployment_url"):
            click.echo(f"deployment URL: {scraps['deployment_url']}")
        if scraps.get("monitor_status"):
            click.echo("monitor status:")
            click.echo(scraps["monitor_status"])
        click.echo(f"executed notebooks: {run.folder}")
    if not result.ok:
        raise PipelineError(result.error)
