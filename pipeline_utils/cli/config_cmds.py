"""``config list|add|delete|validate``: the deployment-metadata document of the space."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline_utils.cli.output import emit_table, json_option, note, to_json
from pipeline_utils.config import document_problems, dump_yaml, keyed_entries, load_yaml_file
from pipeline_utils.errors import BadInput
from pipeline_utils.space import get_space

yml_path = click.Path(path_type=Path)


def entry_row(model_asset_id: str, entry: dict) -> dict:
    """The summary line of one entry."""
    wmla = entry.get("wmla_deployment") or {}
    monitors = entry.get("openscale_custom_metric_provider") or {}
    return {
        "model_asset_id": model_asset_id,
        "model_name": entry.get("model_name"),
        "deployment_name": wmla.get("deployment_name"),
        "model_asset": entry.get("model_asset"),
        "dependency_filename": wmla.get("dependency_filename"),
        "deployment_url": wmla.get("deployment_url"),
        "monitors": ", ".join(monitors) or None,
    }


@click.group()
def config() -> None:
    """Manage the deployment-metadata entries stored in the space."""


@config.command("list")
@click.option("--detail", is_flag=True, help="Show the whole document as YAML.")
@json_option
def list_command(detail: bool, as_json: bool) -> None:
    """List the metadata entries (one per model asset id)."""
    document = get_space().metadata()
    if detail:
        click.echo(to_json(document) if as_json else dump_yaml(document))
        return
    rows = [entry_row(key, entry) for key, entry in document.items()]
    columns = ["model_asset_id", "model_name", "deployment_name", "deployment_url", "monitors"]
    emit_table(rows, columns, as_json=as_json, title="deployment metadata")


@config.command("add")
@click.option("--path-yml", required=True, type=yml_path, help="YAML with entries keyed by model asset id.")
@click.option("-f", "--force", is_flag=True, help="Replace entries that already exist.")
def add_command(path_yml: Path, force: bool) -> None:
    """Add entries keyed by model asset id; a deployment name another entry holds is refused (Conflict)."""
    entries = keyed_entries(load_yaml_file(path_yml), path_yml)
    space = get_space()
    known = {asset.id for asset in space.list_assets()}
    for key in entries:
        if key not in known:
            raise BadInput(f"entry key {key!r} is not the id of a model asset in the space", field=str(path_yml))
    space.put_entries(entries, overwrite=force)
    note(f"added {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}: {', '.join(entries)}")


@config.command("delete")
@click.option("--name", help="Deployment name of the entry.")
@click.option("--model-asset-id", help="Model asset id of the entry.")
def delete_command(name: str | None, model_asset_id: str | None) -> None:
    """Delete one entry, named by deployment name or model asset id."""
    if bool(name) == bool(model_asset_id):
        raise BadInput("give exactly one of --name or --model-asset-id", field="config delete")
    space = get_space()
    key = model_asset_id or space.entry_for_deployment(name)[0]
    space.delete_entry(key)
    note(f"deleted metadata entry {key}")


@config.command("validate")
@click.option("--path-yml", required=True, type=yml_path, help="YAML to check (a draft or keyed entries).")
def validate_command(path_yml: Path) -> None:
    """Check a metadata YAML (schema, monitor definitions, thresholds); print every problem; exit 1 when any."""
    from pipeline_utils.config import document_notes

    document = load_yaml_file(path_yml)
    problems = document_problems(document)
    if problems:
        for problem in problems:
            click.echo(f"{path_yml}: {problem}", err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"{path_yml}: valid")
    for line in document_notes(document):
        click.echo(f"{path_yml}: {line}")
