"""Staging (seed 001 ``prepare stage``): model and dependency into the space, entry into the metadata."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline_utils.config.metadata import draft_entry, load_yaml_file
from pipeline_utils.errors import PipelineError
from pipeline_utils.space.base import Asset, Space

OVERWRITE, NEW, ABORT = "overwrite", "new", "abort"
Decide = Callable[[Asset], str]


@dataclass(frozen=True)
class StageResult:
    """What staging stored: the model asset, the dependency asset and the metadata entry."""

    model_asset: Asset
    dependency_asset: Asset
    entry: dict

    @property
    def model_asset_id(self) -> str:
        """The key of the entry in the metadata document."""
        return self.model_asset.id


def check_source(path: str | Path, option: str) -> Path:
    """A path to stage must exist; a folder must hold at least one file."""
    path = Path(path)
    if not path.exists():
        raise PipelineError(f"{option}: {path}: no such file or folder")
    if path.is_dir() and not any(p.is_file() for p in path.rglob("*")):
        raise PipelineError(f"{option}: {path}: folder is empty")
    return path


def asset_name(path: Path) -> str:
    """Folders are staged as ``<folder>.zip``; files under their own name."""
    return f"{path.name}.zip" if path.is_dir() else path.name


def zip_folder(folder: Path, target: Path) -> Path:
    """Zip a folder's contents (paths relative to the folder), like ``cd folder && zip -r target .``."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                path = Path(root) / name
                archive.write(path, path.relative_to(folder).as_posix())
    return target


def _packed(space: Space, path: Path) -> Path:
    if path.is_file():
        return path
    return zip_folder(path, space.scratch_path(asset_name(path)))


def _decide(space: Space, name: str, force: bool, decide: Decide | None) -> str | None:
    """For an asset name already in the space: the id to overwrite, or None for a new asset."""
    existing = space.assets_named(name)
    if not existing:
        return None
    if force:
        return existing[-1].id
    if decide is None:
        raise PipelineError(
            f"asset {name!r} already exists in the space (id {existing[-1].id}); "
            "use -f to overwrite it (no terminal to ask)"
        )
    answer = decide(existing[-1])
    if answer == OVERWRITE:
        return existing[-1].id
    if answer == NEW:
        return None
    raise PipelineError(f"staging aborted: asset {name!r} already exists; nothing was stored")


def stage(
    space: Space,
    path_model: str | Path,
    path_dependency: str | Path,
    path_yml: str | Path,
    *,
    force: bool = False,
    decide: Decide | None = None,
    model_asset_name: str | None = None,
) -> StageResult:
    """Validate everything first, then store model and dependency as assets and the filled-in entry.

    ``model_asset_name`` names the model asset (default: the file name, or the folder name + ``.zip``).
    """
    model = check_source(path_model, "--path-model")
    dependency = check_source(path_dependency, "--path-dependency")
    if not dependency.is_dir():
        raise PipelineError(f"--path-dependency: {dependency}: expected a deployment folder")
    entry = draft_entry(load_yaml_file(path_yml), path_yml)
    model_name, dependency_name = model_asset_name or asset_name(model), asset_name(dependency)
    replace_model = _decide(space, model_name, force, decide)
    replace_dependency = _decide(space, dependency_name, force, decide)

    model_asset = space.add_asset(_packed(space, model), model_name, "model", replace_id=replace_model)
    dependency_asset = space.add_asset(
        _packed(space, dependency), dependency_name, "dependency", replace_id=replace_dependency
    )
    entry["deployment_space_id"] = space.space_id
    entry["model_asset"] = model_asset.name
    entry["wmla_deployment"]["dependency_filename"] = dependency_asset.name
    space.put_entries({model_asset.id: entry}, overwrite=True)
    return StageResult(model_asset, dependency_asset, entry)
