"""Printing results: rich tables for people, JSON for scripts (``--json``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table

WIDTH = None if sys.stdout.isatty() else 160
console = Console(soft_wrap=True, width=WIDTH)
err_console = Console(stderr=True, soft_wrap=True, width=WIDTH)

json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON instead of a table.")


def to_json(value: Any) -> str:
    """JSON text for any result (dates and paths as strings)."""
    return json.dumps(value, indent=2, default=str)


def emit_table(rows: Sequence[dict], columns: Sequence[str], *, as_json: bool, title: str | None = None) -> None:
    """Print rows as a table, or as a JSON list when ``as_json``."""
    if as_json:
        click.echo(to_json(list(rows)))
        return
    if not rows:
        err_console.print(f"[dim]{title or 'nothing'}: none[/dim]")
        return
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    console.print(table)


def emit_record(record: dict, *, as_json: bool, title: str | None = None) -> None:
    """Print one record as a two-column table, or as a JSON object."""
    if as_json:
        click.echo(to_json(record))
        return
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in record.items():
        shown = to_json(value) if isinstance(value, (dict, list)) else ("" if value is None else str(value))
        table.add_row(key, shown)
    console.print(table)


def note(message: str) -> None:
    """A progress or summary line on stderr, so stdout stays parseable."""
    err_console.print(message, highlight=False)
