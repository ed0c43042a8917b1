"""``version``: what is installed, which backend runs, where state lives."""

from __future__ import annotations

import click

from pipeline_utils import __version__
from pipeline_utils.cli.output import emit_record, json_option
from pipeline_utils.config.settings import backend_name, mlops_home


@click.command()
@json_option
def version(as_json: bool) -> None:
    """Print the version, the backend and where state lives."""
    record = {"version": __version__, "backend": backend_name(), "mlops_home": str(mlops_home())}
    if as_json:
        emit_record(record, as_json=True)
    else:
        click.echo(f"run_pipeline {__version__} (backend {record['backend']}, state in {record['mlops_home']})")
