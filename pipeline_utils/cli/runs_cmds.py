"""``runs list|show|report``: what ran, and what the notebooks recorded, read from the executed copies."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from pipeline_utils.cli.output import emit_record, emit_table, json_option, note
from pipeline_utils.notebooks import get_run, list_runs, read_scraps


def _seconds(value: float | None) -> str | None:
    return None if value is None else f"{value:.1f}s"


@click.group()
def runs() -> None:
    """Review executed runs and their notebooks."""


@runs.command("list")
@click.option("--limit", default=20, show_default=True, help="How many of the latest runs.")
@json_option
def list_command(limit: int, as_json: bool) -> None:
    """List recent runs, newest first."""
    rows = [
        {
            "id": r.id,
            "kind": r.kind,
            "status": r.status,
            "started_at": r.started_at,
            "duration": _seconds(r.duration_s),
            "notebooks": len(r.notebooks),
            "error": r.error,
        }
        for r in list_runs(limit)
    ]
    if as_json:
        emit_table(rows, [], as_json=True)
        return
    emit_table(rows, ["id", "kind", "status", "started_at", "duration", "notebooks", "error"], as_json=False,
               title="runs")


@runs.command("show")
@click.argument("run_id")
@json_option
def show_command(run_id: str, as_json: bool) -> None:
    """Show one run: parameters, each executed notebook and the values it recorded."""
    run = get_run(run_id)
    notebooks = [{**asdict(nb), "scraps": read_scraps(nb.path)} for nb in run.notebooks]
    record = {**asdict(run), "folder": str(run.folder), "notebooks": notebooks}
    if as_json:
        emit_record(record, as_json=True)
        return
    summary = {k: v for k, v in record.items() if k != "notebooks"}
    summary["duration_s"] = _seconds(run.duration_s)
    emit_record(summary, as_json=False, title=f"run {run.id}")
    rows = [
        {
            "seq": nb["seq"],
            "notebook": nb["notebook"],
            "status": nb["status"],
            "duration": _seconds(nb["duration_s"]),
            "path": nb["path"],
            "recorded": ", ".join(f"{k}={v!r}" for k, v in nb["scraps"].items()),
            "error": nb["error"],
        }
        for nb in notebooks
    ]
    emit_table(rows, ["seq", "notebook", "status", "duration", "path", "recorded", "error"], as_json=False,
               title="notebooks")


@runs.command("report")
@click.argument("run_id")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False),
              help="The HTML file to write (default: ./report-RUN_ID.html).")
@click.option("--report-mode", is_flag=True, help="Hide the code of every cell (outputs stay).")
@click.option("--force", is_flag=True, help="Overwrite the output file if it exists.")
def report_command(run_id: str, output: Path | None, report_mode: bool, force: bool) -> None:
    """Write one self-contained HTML report of a run for reviewers; prints its path."""
    from pipeline_utils.reports import write_report

    path = write_report(run_id, output, report_mode=report_mode, force=force, progress=note)
    note(f"wrote {path.stat().st_size / 1024:.0f} KiB")
    click.echo(str(path))
