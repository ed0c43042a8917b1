"""``doctor``: check that each concern's backend can work now (credentials, services, space), one line each."""

from __future__ import annotations

import os
from collections.abc import Callable

import click

from pipeline_utils.backends import CONCERNS, chosen, create, implementation
from pipeline_utils.cli.output import emit_table
from pipeline_utils.errors import PipelineError


def _outcome(check: str, backend: str, run: Callable[[], str]) -> dict[str, str]:
    try:
        return {"check": check, "backend": backend, "status": "ok", "detail": run()}
    except PipelineError as exc:
        return {"check": check, "backend": backend, "status": "FAIL", "detail": str(exc)}


def _shared_checks() -> list[tuple[str, str, Callable[[], str]]]:
    """The checks the chosen backends share (e.g. ``token``), once each, before the concerns' own."""
    found: dict[str, tuple[str, str, Callable[[], str]]] = {}
    for concern in CONCERNS:
        backend = chosen(concern)[0]
        try:
            checks = implementation(concern).shared_checks(os.environ)
        except PipelineError:
            continue
        for name, run in checks.items():
            found.setdefault(name, (name, backend, run))
    return list(found.values())


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON instead of a table.")
def doctor(as_json: bool) -> None:
    """Check each concern's backend (token, space, deploy target, monitors, training, volumes); exit 1 on a failure."""
    rows = [_outcome(name, backend, run) for name, backend, run in _shared_checks()]
    for concern in CONCERNS:
        backend = chosen(concern)[0]
        rows.append(_outcome(concern, backend, lambda concern=concern: create(concern).diagnose()))
    emit_table(rows, ["check", "backend", "status", "detail"], as_json=as_json, title="mlops doctor")
    failed = [row["check"] for row in rows if row["status"] != "ok"]
    if failed:
        raise click.exceptions.Exit(1)
