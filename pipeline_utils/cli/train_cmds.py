"""``train submit|list|logs|stop``: training jobs (seed 001's A1 step)."""

from __future__ import annotations

import click

from pipeline_utils.cli.common import finish_notebook_command, parse_pairs, report_mode_option, save_notebook_option
from pipeline_utils.cli.output import emit_record, emit_table, json_option, note
from pipeline_utils.notebooks import run_notebook
from pipeline_utils.training import training_runner


@click.group()
def train() -> None:
    """Submit and follow training jobs."""


@train.command("submit")
@click.option("--scripts-dir", required=True, help="Folder of training scripts (copied into the submission).")
@click.option("--main-file", required=True, help="Main file, relative to the scripts folder.")
@click.option("--framework", type=click.Choice(["PyTorch", "distPyTorch"]), default="PyTorch", show_default=True)
@click.option("--workers", type=int, default=1, show_default=True, help="Worker processes (distPyTorch).")
@click.option("--devices-per-worker", type=int, default=0, show_default=True)
@click.option("--memory", "memory_mb", type=int, help="Memory per worker, MB.")
@click.option("--msd-env", multiple=True, metavar="K=V", help="Environment variable for the job (value kept secret).")
@click.option("--data-volume", help="Storage volume holding the data.")
@click.option("--data-path", default="", help="The data's path on that volume.")
@click.option("--arg", "args", multiple=True, help="Argument for the main file (repeatable).")
@click.option("--name", help="A name for the job.")
@click.option("--timeout", type=float, help="Seconds to wait for the job.")
@save_notebook_option
@report_mode_option
@json_option
def submit_command(scripts_dir, main_file, framework, workers, devices_per_worker, memory_mb, msd_env, data_volume,
                   data_path, args, name, timeout, save_notebook, report_mode, as_json) -> None:
    """Run A1: prepare the submission, submit it, follow its log, wait for the end.

    Ctrl-C ends the command, not the job: the job keeps running detached, and the line printed says how to
    stop it (``train stop JOB_ID``).
    """
    env = parse_pairs(msd_env, "--msd-env")
    parameters = {
        "SCRIPTS_DIR": scripts_dir,
        "MAIN_FILE": main_file,
        "FRAMEWORK": framework,
        "WORKERS": workers,
        "DEVICES_PER_WORKER": devices_per_worker,
        "MEMORY_MB": memory_mb,
        "DATA_VOLUME": data_volume,
        "DATA_PATH": data_path,
        "ARGS": list(args),
        "JOB_NAME": name,
        "ENV_NAMES": sorted(env),
        "TIMEOUT": timeout,
    }
    result = run_notebook("A1_Submit_Training", parameters, secrets=env, kind="train submit",
                          report_mode=report_mode, stream_output=True)
    finish_notebook_command(result, save_notebook)
    scraps = result.scraps()
    if as_json:
        emit_record({"run_id": result.run_id, "notebook": str(result.output_path), **scraps}, as_json=True)
    else:
        click.echo(scraps.get("model_dir", ""))


@train.command("list")
@json_option
def list_command(as_json: bool) -> None:
    """List training jobs, oldest first."""
    rows = [
        {
            "job_id": job.job_id,
            "name": job.name,
            "status": job.status.value,
            "exit_code": job.exit_code,
            "workers": len(job.workers),
            "submitted_at": job.submitted_at,
            "outputs_uri": job.outputs_uri,
            "message": job.message,
        }
        for job in training_runner().list()
    ]
    emit_table(rows, ["job_id", "name", "status", "exit_code", "workers", "submitted_at", "message"],
               as_json=as_json, title="training jobs")


@train.command("logs")
@click.argument("job_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the job ends.")
def logs_command(job_id: str, follow: bool) -> None:
    """Print a job's log."""
    for line in training_runner().logs(job_id, follow=follow):
        click.echo(line)


@train.command("stop")
@click.argument("job_id")
def stop_command(job_id: str) -> None:
    """Stop a job (its whole process group)."""
    note(training_runner().stop(job_id).message)
