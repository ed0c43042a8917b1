"""``runtime status|stop``: the local inference runtime process of ``$MLOPS_HOME``."""

from __future__ import annotations

import click

from pipeline_utils.cli.output import emit_record, json_option, note


@click.group()
def runtime() -> None:
    """The local inference runtime that serves deployments (one background process)."""


@runtime.command("status")
@json_option
def status_command(as_json: bool) -> None:
    """Whether the runtime runs, its pid and base URL."""
    from pipeline_utils.backends.local.runtime.client import daemon_url, default_client

    info = default_client().daemon_info()
    record = {"running": info is not None, **(info or {}), "base_url": daemon_url(info) if info else None}
    emit_record(record, as_json=as_json, title="runtime")


@runtime.command("stop")
def stop_command() -> None:
    """Stop the runtime and every deployment it serves (started deployments come back on its next start)."""
    from pipeline_utils.backends.local.runtime.client import default_client

    client = default_client()
    if client.daemon_info() is None:
        note("the runtime is not running")
        return
    client.shutdown_daemon()
    note("runtime stopped")
