"""``version``: what is installed, which implementation each concern uses, where state lives."""

from __future__ import annotations

import click

from pipeline_utils import __version__
from pipeline_utils.backends import CONCERNS, available, chosen
from pipeline_utils.cli.output import emit_record, json_option
from pipeline_utils.config.settings import backend_name, mlops_home


@click.command()
@json_option
def version(as_json: bool) -> None:
    """Print the version, the backend of each concern (and the variable that chose it), and where state lives."""
    concerns = {name: chosen(name) for name in CONCERNS}
    record = {
        "version": __version__,
        "backend": backend_name(),
        "concerns": {name: value for name, (value, _) in concerns.items()},
        "installed": {name: available(name) for name in CONCERNS},
        "mlops_home": str(mlops_home()),
    }
    if as_json:
        emit_record(record, as_json=True)
        return
    click.echo(f"run_pipeline {__version__} (backend {record['backend']}, state in {record['mlops_home']})")
    for name, (value, variable) in concerns.items():
        click.echo(f"  {name:<16} {value:<10} (from {variable}; installed: {', '.join(available(name)) or 'none'})")
