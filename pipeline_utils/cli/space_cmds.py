"""``space list|show|add|download|delete``: the assets of the deployment space."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline_utils.cli.output import emit_record, emit_table, json_option, note
from pipeline_utils.errors import Conflict
from pipeline_utils.space import get_space

ASSET_COLUMNS = ["id", "name", "asset_type", "kind", "version", "size", "created_at", "updated_at"]


@click.group()
def space() -> None:
    """Inspect and manage the assets of the deployment space."""


@space.command("list")
@json_option
def list_command(as_json: bool) -> None:
    """List the assets of the space."""
    rows = [asset.as_dict() for asset in get_space().list_assets()]
    emit_table(rows, ASSET_COLUMNS, as_json=as_json, title="assets")


@space.command("show")
@click.argument("asset")
@json_option
def show_command(asset: str, as_json: bool) -> None:
    """Show one asset (by id or name) with its version history."""
    record = get_space().get_asset(asset).as_dict(with_versions=True)
    emit_record(record, as_json=as_json, title=record["name"])


@space.command("add")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", help="Asset name (default: the file name, or the folder name + .zip).")
@click.option("-f", "--force", is_flag=True, help="Add a new version to the asset of that name (its id stays).")
@json_option
def add_command(path: Path, name: str | None, force: bool, as_json: bool) -> None:
    """Stage a data file or folder (zipped) as an asset, e.g. a drift monitor's reference_asset; prints its id."""
    from pipeline_utils.space.staging import stage_data

    asset = stage_data(get_space(), path, name, force=force)
    if as_json:
        emit_record(asset.as_dict(), as_json=True)
        return
    note(f"staged {asset.name} version {asset.version} ({asset.size} bytes)")
    click.echo(asset.id)


@space.command("download")
@click.argument("asset")
@click.option("--dest", type=click.Path(path_type=Path), default=Path("."), show_default=True, help="Folder or file.")
@click.option("--version", "version_number", type=int, help="A version other than the latest.")
def download_command(asset: str, dest: Path, version_number: int | None) -> None:
    """Download an asset (by id or name) from the space."""
    target = get_space().download_asset(asset, dest, version=version_number)
    click.echo(str(target))


@space.command("delete")
@click.argument("asset")
def delete_command(asset: str) -> None:
    """Delete an asset (by id or name) and all its versions."""
    space_ = get_space()
    found = space_.get_asset(asset)
    for key, entry in space_.metadata().items():
        if found.id in (key, (entry.get("wmla_deployment") or {}).get("dependency_asset_id")):
            raise Conflict(
                f"asset {found.name!r} ({found.id}) is pinned by metadata entry {key}; "
                "delete that entry first with 'config delete'"
            )
    space_.delete_asset(found.id)
    note(f"deleted asset {found.name} ({found.id})")
