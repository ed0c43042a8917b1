"""``monitor create|run|status|list|history|delete``: monitors of a deployment (seed 001)."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline_utils.cli.common import finish_notebook_command, report_mode_option, save_notebook_option
from pipeline_utils.cli.output import emit_record, emit_table, json_option, note, to_json
from pipeline_utils.notebooks import run_notebook

EXIT_VIOLATIONS = 10
EXIT_FAILED_EVALUATION = 11

name_option = click.option("--name", required=True, help="Deployment name.")
monitor_option = click.option("--monitor", "monitor_id", help="One monitor id (default: all of the deployment).")


@click.group()
def monitor() -> None:
    """Configure and evaluate monitors with thresholds; report violations."""


@monitor.command("create")
@name_option
@click.option("--service-provider-name", default="local", show_default=True,
              help="Deployment service provider (the local backend has one).")
@save_notebook_option
@report_mode_option
@json_option
def create_command(name: str, service_provider_name: str, save_notebook: bool, report_mode: bool,
                   as_json: bool) -> None:
    """Run A3: subscribe the deployment, create its monitors, evaluate once when there is data."""
    from pipeline_utils.monitor import format_status, monitor_status

    result = run_notebook("A3_Monitor_Configuration", {"DEPLOYMENT_NAME": name}, kind="monitor create",
                          report_mode=report_mode)
    finish_notebook_command(result, save_notebook)
    if as_json:
        emit_record({"run_id": result.run_id, "notebook": str(result.output_path), **result.scraps()}, as_json=True)
    else:
        click.echo(format_status(monitor_status(name)))


@monitor.command("run")
@name_option
@monitor_option
@json_option
def run_command(name: str, monitor_id: str | None, as_json: bool) -> None:
    """Evaluate the monitors now and store the measurements.

    Exits 0 when every threshold holds, 10 when a threshold is violated, 11 when an evaluation failed
    (11 wins when both), so that a scheduler can alert.
    """
    from pipeline_utils.monitor import run_monitors
    from pipeline_utils.monitor.model import FAILED

    runs = run_monitors(name, monitor_id)
    if as_json:
        click.echo(to_json([r.to_dict() for r in runs]))
    else:
        rows = [{"monitor": r.monitor_id, "run_id": r.run_id, "state": r.state, "issues": r.issues,
                 "reason": r.reason, "problems": "; ".join(r.problems) or None} for r in runs]
        emit_table(rows, ["monitor", "run_id", "state", "issues", "reason", "problems"], as_json=False,
                   title=f"evaluation of {name}")
    failed = [r.monitor_id for r in runs if r.state == FAILED]
    violations = sum(r.issues for r in runs if r.state != FAILED)
    if failed:
        note(f"{name}: evaluation failed for {', '.join(failed)} (exit {EXIT_FAILED_EVALUATION})")
        raise click.exceptions.Exit(EXIT_FAILED_EVALUATION)
    if violations:
        note(f"{name}: {violations} threshold violation(s) (exit {EXIT_VIOLATIONS})")
        raise click.exceptions.Exit(EXIT_VIOLATIONS)


@monitor.command("status")
@name_option
@json_option
def status_command(name: str, as_json: bool) -> None:
    """The latest run of each monitor: run id, time, issues, and each violated threshold."""
    from pipeline_utils.monitor import format_status, monitor_status

    statuses = monitor_status(name)
    click.echo(to_json([s.to_dict() for s in statuses]) if as_json else format_status(statuses))


@monitor.command("list")
@click.option("--name", help="Only this deployment's monitors.")
@json_option
def list_command(name: str | None, as_json: bool) -> None:
    """List configured monitors."""
    from pipeline_utils.monitor import list_monitors

    monitors = list_monitors(name)
    if as_json:
        click.echo(to_json([m.to_dict() for m in monitors]))
        return
    rows = [{"deployment": m.deployment, "monitor": m.monitor_id, "definition": m.definition,
             "subscription": m.subscription_id, "created_at": m.created_at} for m in monitors]
    emit_table(rows, ["deployment", "monitor", "definition", "subscription", "created_at"], as_json=False,
               title="monitors")


@monitor.command("history")
@name_option
@monitor_option
@click.option("--out", type=click.Path(path_type=Path), help="Folder for the PNG plots (default: under MLOPS_HOME).")
@json_option
def history_command(name: str, monitor_id: str | None, out: Path | None, as_json: bool) -> None:
    """Each metric over runs against its threshold: a table, and a PNG plot per monitor."""
    from pipeline_utils.config.settings import mlops_home
    from pipeline_utils.monitor import history_plots, monitor_history

    runs = monitor_history(name, monitor_id)
    plots = history_plots(name, out or mlops_home() / "monitor_plots" / name, monitor_id)
    if as_json:
        click.echo(to_json({"runs": [r.to_dict() for r in runs], "plots": [str(p) for p in plots]}))
        return
    rows = [{"monitor": r.monitor_id, "run_id": r.run_id, "finished_at": r.finished_at, "state": r.state,
             "issues": r.issues} for r in runs]
    emit_table(rows, ["monitor", "run_id", "finished_at", "state", "issues"], as_json=False, title=f"history of {name}")
    for plot in plots:
        note(f"plot: {plot}")


@monitor.command("delete")
@name_option
@monitor_option
def delete_command(name: str, monitor_id: str | None) -> None:
    """Delete the deployment's monitors (or one) and their runs."""
    from pipeline_utils.monitor import delete_monitors

    removed = delete_monitors(name, monitor_id)
    note(f"deleted monitor(s) {', '.join(removed) or 'none'} of {name}")
