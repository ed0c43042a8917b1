"""``prepare stage``: model, deployment folder and draft metadata into the space."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pipeline_utils.cli.output import emit_record, emit_table, json_option, note
from pipeline_utils.space import ABORT, NEW, OVERWRITE, Asset, get_space, stage

existing_path = click.Path(path_type=Path)


def ask_about_existing(asset: Asset) -> str:
    """Ask like the seed's CLI: ``y`` overwrites, ``n`` adds a new asset of the same name, empty aborts."""
    answer = click.prompt(
        f"Asset {asset.name!r} already exists (id {asset.id}, version {asset.version}). "
        "Overwrite it [y], add a new asset with the same name [n], or abort [enter]?",
        default="",
        show_default=False,
        err=True,
    )
    return {"y": OVERWRITE, "yes": OVERWRITE, "n": NEW, "no": NEW}.get(answer.strip().lower(), ABORT)


@click.group()
def prepare() -> None:
    """Prepare a deployment: stage assets and metadata into the deployment space."""


@prepare.command("stage")
@click.option("--path-model", required=True, type=existing_path, help="Model file or folder (folders are zipped).")
@click.option("--path-dependency", required=True, type=existing_path, help="Deployment folder (kernel.py, README.md).")
@click.option("--path-yml", required=True, type=existing_path, help="Draft deployment-metadata YAML.")
@click.option("-f", "--force", is_flag=True, help="Overwrite assets of the same name (keeps their ids).")
@json_option
def stage_command(path_model: Path, path_dependency: Path, path_yml: Path, force: bool, as_json: bool) -> None:
    """Stage the model and its deployment folder, pin them in the metadata entry, print the model asset id.

    All or nothing: a failure leaves the space as it was.
    """
    space = get_space()
    decide = ask_about_existing if sys.stdin.isatty() else None
    result = stage(space, path_model, path_dependency, path_yml, force=force, decide=decide)
    for notice in result.notices:
        note(notice)
    if as_json:
        emit_record(
            {
                "model_asset_id": result.model_asset_id,
                "model_asset": result.model_asset.as_dict(),
                "dependency_asset": result.dependency_asset.as_dict(),
                "entry": result.entry,
                "notices": list(result.notices),
            },
            as_json=True,
        )
        return
    rows = [{**a.as_dict(), "sha256": a.sha256[:12]} for a in (result.model_asset, result.dependency_asset)]
    columns = ["asset_type", "name", "kind", "id", "version", "size", "sha256"]
    emit_table(rows, columns, as_json=False, title="staged assets")
    note(f"metadata entry stored under model asset id {result.model_asset_id}")
    click.echo(result.model_asset_id)
