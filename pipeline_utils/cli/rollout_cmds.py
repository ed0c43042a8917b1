"""``deploy rollout`` and ``rollout status|list|abort|resume``: traffic moved step by step, gated by monitors."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline_utils.cli.common import finish_notebook_command, report_mode_option, save_notebook_option
from pipeline_utils.cli.output import emit_record, emit_table, json_option, note
from pipeline_utils.errors import BadInput
from pipeline_utils.notebooks import run_notebook

ROLLOUT_NOTEBOOK = "A4_Rollout"
endpoint_option = click.option("--endpoint", required=True, help="Endpoint name.")


def _run_a4(parameters: dict, kind: str, save_notebook: bool, report_mode: bool, as_json: bool) -> None:
    """Run the rollout notebook (no cell time limit: the holds decide how long it takes) and show the outcome."""
    from pipeline_utils.rollout import rollout_status

    result = run_notebook(ROLLOUT_NOTEBOOK, parameters, kind=kind, report_mode=report_mode, cell_timeout=None,
                          stream_output=not as_json)
    rollout_id = result.scraps().get("rollout_id")
    if as_json and rollout_id:
        rollout, events = rollout_status(rollout_id=rollout_id)
        emit_record({"run_id": result.run_id, "notebook": str(result.output_path), **rollout.to_dict(),
                     "events": [e.__dict__ for e in events]}, as_json=True)
    finish_notebook_command(result, save_notebook)


@click.command("rollout")
@endpoint_option
@click.option("--to", "deployment", required=True, help="The new deployment (attached at 0 % if need be).")
@click.option("--steps", default="10,50,100", show_default=True, metavar="P,P,...",
              help="Percents of the endpoint's traffic the new deployment gets, step by step.")
@click.option("--hold", default="60s", show_default=True, metavar="DURATION",
              help="How long traffic flows at each step before the monitors run (e.g. 30s, 5m).")
@click.option("--monitor", "monitors", multiple=True, metavar="ID",
              help="A monitor of the new deployment that gates each step (repeatable; default: all of them).")
@click.option("--no-monitors", is_flag=True, help="Gate the steps with no monitor (only --request and readiness).")
@click.option("--request", "request_file", type=click.Path(dir_okay=False), default="",
              help="A JSON request sent pinned to the new deployment at each step; anything but HTTP 200 rolls back.")
@save_notebook_option
@report_mode_option
@json_option
def start_command(endpoint: str, deployment: str, steps: str, hold: str, monitors: tuple[str, ...], no_monitors: bool,
                  request_file: str, save_notebook: bool, report_mode: bool, as_json: bool) -> None:
    """Move an endpoint's traffic to a deployment step by step, gated by its monitors (runs notebook A4).

    At each step: set the split, send the --request pinned to the new deployment, hold, run the monitors on the
    new deployment's own payloads. A violated threshold or a failed evaluation returns all traffic to the split
    from before the rollout, and the command exits 1. Every step, measurement and decision is recorded: see
    'rollout status --endpoint E'.
    """
    from pipeline_utils.rollout import check_rollout, read_check_request

    if no_monitors and monitors:
        raise BadInput("give --monitor or --no-monitors, not both", field="--no-monitors")
    chosen = [] if no_monitors else list(monitors) or None
    step_list, hold_s, _, _ = check_rollout(endpoint, deployment, steps, hold, chosen)
    read_check_request(request_file)
    parameters = {"ENDPOINT": endpoint, "DEPLOYMENT": deployment, "STEPS": step_list, "HOLD": f"{hold_s:g}s",
                  "MONITORS": chosen, "REQUEST_FILE": str(Path(request_file).resolve()) if request_file else "",
                  "RESUME": False}
    _run_a4(parameters, "deploy rollout", save_notebook, report_mode, as_json)


@click.group()
def rollout() -> None:
    """Follow, abort and resume rollouts ('deploy rollout' starts one)."""


def _show(rollout, events, as_json: bool) -> None:
    if as_json:
        emit_record({**rollout.to_dict(), "events": [e.__dict__ for e in events]}, as_json=True)
        return
    summary = {"id": rollout.id, "endpoint": rollout.endpoint, "deployment": rollout.deployment,
               "state": rollout.state, "step": f"{rollout.step + 1} of {len(rollout.steps)} ({rollout.percent} %)",
               "steps": ",".join(map(str, rollout.steps)), "hold": f"{rollout.hold_s:g} s",
               "monitors": ", ".join(rollout.monitors) or "-",
               "before": " ".join(f"{k}={v}" for k, v in rollout.before_traffic.items()),
               "started": rollout.started_at, "ended": rollout.ended_at, "reason": rollout.reason,
               "notebook run": rollout.run_id}
    emit_record(summary, as_json=False, title=f"rollout {rollout.id}")
    rows = [{"time": e.at, "step": e.step + 1 if e.step is not None and e.step >= 0 else None,
             "percent": e.percent, "kind": e.kind, "message": e.message} for e in events]
    emit_table(rows, ["time", "step", "percent", "kind", "message"], as_json=False, title="steps and decisions")
    if rollout.state == "interrupted":
        note(f"the process driving rollout {rollout.id} is gone: carry it on with 'rollout resume --endpoint "
             f"{rollout.endpoint}' or return the traffic with 'rollout abort --endpoint {rollout.endpoint}'")


@rollout.command("status")
@click.option("--endpoint", default=None, help="Show the endpoint's latest rollout.")
@click.option("--id", "rollout_id", default=None, help="Show this rollout (a unique prefix is enough).")
@json_option
def status_command(endpoint: str | None, rollout_id: str | None, as_json: bool) -> None:
    """Where a rollout stands: its plan, state, current step, and every step, measurement and decision."""
    from pipeline_utils.rollout import rollout_status

    rollout, events = rollout_status(endpoint, rollout_id)
    _show(rollout, events, as_json)


@rollout.command("list")
@click.option("--endpoint", default=None, help="Only this endpoint's rollouts.")
@click.option("--limit", default=20, show_default=True, help="How many of the latest rollouts.")
@json_option
def list_command(endpoint: str | None, limit: int, as_json: bool) -> None:
    """Recent rollouts, newest first."""
    from pipeline_utils.rollout import list_rollouts

    rows = [r.to_dict() for r in list_rollouts(endpoint, limit)]
    if not as_json:
        rows = [{**row, "steps": ",".join(map(str, row["steps"])), "step": row["step"] + 1} for row in rows]
    emit_table(rows, ["id", "endpoint", "deployment", "state", "steps", "step", "percent", "started_at", "reason"],
               as_json=as_json, title="rollouts")


@rollout.command("abort")
@endpoint_option
@click.option("--reason", default="by request", show_default=True, help="Why (recorded).")
def abort_command(endpoint: str, reason: str) -> None:
    """Stop the endpoint's rollout and return all traffic to the split from before it."""
    from pipeline_utils.rollout import abort_rollout

    if not reason.strip():
        raise BadInput("must not be empty", field="--reason")
    ended = abort_rollout(endpoint, reason)
    if not ended.final:
        note(f"abort requested: rollout {ended.id} rolls back when its controller next looks (after its evaluation)")
        return
    note(f"rollout {ended.id}: {ended.state}: {ended.reason}")


@rollout.command("resume")
@endpoint_option
@save_notebook_option
@report_mode_option
@json_option
def resume_command(endpoint: str, save_notebook: bool, report_mode: bool, as_json: bool) -> None:
    """Carry on the endpoint's interrupted rollout (its process is gone) from the step it was at (runs A4)."""
    from pipeline_utils.rollout import rollout_status

    rollout, _ = rollout_status(endpoint, None)
    if rollout.state != "interrupted":
        raise BadInput(f"rollout {rollout.id} is {rollout.state}; only an interrupted rollout can be resumed",
                       field="--endpoint")
    parameters = {"ENDPOINT": endpoint, "DEPLOYMENT": rollout.deployment, "STEPS": rollout.steps,
                  "HOLD": f"{rollout.hold_s:g}s", "MONITORS": rollout.monitors, "REQUEST_FILE": "", "RESUME": True}
    _run_a4(parameters, "rollout resume", save_notebook, report_mode, as_json)
