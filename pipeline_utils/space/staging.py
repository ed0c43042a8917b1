"""Staging (seed 001 ``prepare stage``): model and dependency into the space, entry into the metadata.

All or nothing: every input is checked before anything is stored, and a failure after the model
asset is stored removes what this staging added, so the space is left as it was. The entry pins
both assets by id and version; an entry a deployment runs keeps saying what it runs (``deployed``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline_utils.config.metadata import draft_entry, load_yaml_file
from pipeline_utils.errors import BadInput, Conflict, PipelineError
from pipeline_utils.space.base import FILE, FOLDER, Asset, Space, deployment_name_of, runs_deployment
from pipeline_utils.space.folders import asset_name, check_source, zip_folder

OVERWRITE, NEW, ABORT = "overwrite", "new", "abort"
Decide = Callable[[Asset], str]


@dataclass(frozen=True)
class StageResult:
    """What staging stored: the model asset, the dependency asset, the metadata entry, and notes for the user."""

    model_asset: Asset
    dependency_asset: Asset
    entry: dict
    notices: tuple[str, ...] = ()

    @property
    def model_asset_id(self) -> str:
        """The key of the entry in the metadata document."""
        return self.model_asset.id


@dataclass(frozen=True)
class _Choice:
    """Where an asset goes: a new version of ``replace_id``, or a new asset (of a name in use, on purpose)."""

    replace_id: str | None = None
    same_name_ok: bool = False


def _decide(space: Space, name: str, force: bool, decide: Decide | None) -> _Choice:
    """For an asset name already in the space: overwrite it (``-f``, ``y``) or add another (``n``)."""
    existing = space.assets_named(name)
    if not existing:
        return _Choice()
    if force:
        return _Choice(replace_id=existing[-1].id)
    if decide is None:
        raise Conflict(
            f"asset {name!r} already exists in the space (id {existing[-1].id}); "
            "use -f to overwrite it (no terminal to ask)"
        )
    answer = decide(existing[-1])
    if answer == OVERWRITE:
        return _Choice(replace_id=existing[-1].id)
    if answer == NEW:
        return _Choice(same_name_ok=True)
    raise PipelineError(f"staging aborted: asset {name!r} already exists; nothing was stored")


def _check_deployment_name(document: dict[str, dict], key: str | None, draft: dict, model_name: str,
                           force: bool) -> None:
    """Before storing: the entry's deployment name must be its own (another entry's is a Conflict)."""
    current = document.get(key) if key else None
    name = _entry_name(current, draft)
    for other, entry in document.items():
        if other == key or deployment_name_of(entry) != name or name is None:
            continue
        racing = force and key is None and entry.get("model_asset") == model_name
        if not racing:
            raise Conflict(
                f"{name!r} belongs to metadata entry {other} ({entry.get('model_asset')}); a deployment name "
                "belongs to one entry only: give this entry another name, or null to name it at 'deploy create'",
                field="wmla_deployment.deployment_name",
            )


def _entry_name(current: dict | None, draft: dict) -> str | None:
    """The restaged entry's deployment name: the running deployment's (``deploy create --name`` may have set it
    apart from the draft), else the draft's, else the one it had."""
    if runs_deployment(current):
        return deployment_name_of(current)
    return deployment_name_of(draft) or deployment_name_of(current)


def _still_runs(name: str, deployed: dict | None, draft_name: str | None) -> str:
    """The one line that says a restaged entry's deployment still runs what it was deployed with."""
    if deployed:
        what = (
            f"model asset {deployed['model_asset_id']} v{deployed['model_asset_version']} and dependency "
            f"{deployed['dependency_asset_id']} v{deployed['dependency_asset_version']}"
        )
    else:
        what = "the versions it was deployed with"
    kept = f" (the entry keeps that name; the draft says {draft_name!r})" if draft_name not in (None, name) else ""
    return (
        f"deployment {name!r} still runs {what}; move it to the staged versions with "
        f"'deploy update --name {name}'{kept}"
    )


def _entry_change(
    draft: dict, space_id: str, model: Asset, dependency: Asset, notices: list[str]
) -> Callable[[dict], dict]:
    """The change that writes the staged entry: the draft, the pins, and what a running deployment runs."""

    def change(current: dict) -> dict:
        notices.clear()
        entry = copy.deepcopy(draft)
        entry["deployment_space_id"] = space_id
        entry["model_asset"] = model.name
        entry["model_asset_version"] = model.version
        wmla = entry["wmla_deployment"]
        wmla["dependency_filename"] = dependency.name
        wmla["dependency_asset_id"] = dependency.id
        wmla["dependency_asset_version"] = dependency.version
        old = current.get("wmla_deployment") or {}
        wmla["deployment_name"] = _entry_name(current, draft)
        if runs_deployment(current):
            entry["deployment_id"] = current.get("deployment_id")
            entry["openscale_subscription_id"] = current.get("openscale_subscription_id")
            wmla["deployment_url"] = old.get("deployment_url")
            wmla["deployed"] = old.get("deployed")
            notices.append(_still_runs(wmla["deployment_name"], old.get("deployed"), deployment_name_of(draft)))
        return entry

    return change


def _store(space: Space, source: Path, repack: Callable[[], Path], name: str, asset_type: str, kind: str,
           choice: _Choice, force: bool) -> Asset:
    """Add the asset; with ``-f``, a same-named asset a concurrent staging created just now gets the version."""
    try:
        return space.add_asset(source, name, asset_type, kind=kind, replace_id=choice.replace_id,
                               same_name_ok=choice.same_name_ok)
    except Conflict:
        if not force:
            raise Conflict(f"asset {name!r} was just added by another staging; use -f to overwrite it") from None
    latest = space.assets_named(name)[-1]
    return space.add_asset(repack(), name, asset_type, kind=kind, replace_id=latest.id)


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
    """Check everything, then store model and dependency as assets and the entry pinning them; all or nothing.

    ``model_asset_name`` names the model asset (default: the file name, or the folder name + ``.zip``).
    ``decide`` is asked about an asset name already in the space (without it, only ``force`` overwrites).
    """
    model = check_source(path_model, "--path-model")
    dependency = check_source(path_dependency, "--path-dependency")
    if not dependency.is_dir():
        raise BadInput(f"{dependency}: expected a deployment folder", field="--path-dependency")
    draft = draft_entry(load_yaml_file(path_yml), path_yml)
    model_name, dependency_name = model_asset_name or asset_name(model), asset_name(dependency)
    if model_name == dependency_name:
        raise BadInput(f"model and dependency would both be stored as {model_name!r}; rename one", field="--path-model")
    model_choice = _decide(space, model_name, force, decide)
    dependency_choice = _decide(space, dependency_name, force, decide)
    _check_deployment_name(space.metadata(), model_choice.replace_id, draft, model_name, force)

    scratch: list[Path] = []

    def pack(path: Path) -> Path:
        if path.is_file():
            return path
        scratch.append(space.scratch_path(asset_name(path)))
        return zip_folder(path, scratch[-1])

    added: list[Asset] = []
    notices: list[str] = []
    try:
        model_source, dependency_source = pack(model), pack(dependency)
        added.append(_store(space, model_source, lambda: pack(model), model_name, "model",
                            FOLDER if model.is_dir() else FILE, model_choice, force))
        added.append(_store(space, dependency_source, lambda: pack(dependency), dependency_name, "dependency",
                            FOLDER, dependency_choice, force))
        model_asset, dependency_asset = added
        change = _entry_change(draft, space.space_id, model_asset, dependency_asset, notices)
        entry = space.update_entry(model_asset.id, change, create=True)
    except BaseException:
        for asset in reversed(added):
            space.delete_asset_version(asset.id, asset.version)
        raise
    finally:
        for path in scratch:
            path.unlink(missing_ok=True)
    return StageResult(model_asset, dependency_asset, entry, tuple(notices))


def stage_data(space: Space, path: str | Path, name: str | None = None, *, force: bool = False,
               option: str = "PATH") -> Asset:
    """Store a data file or folder (zipped) as a ``data`` asset, e.g. a drift monitor's reference data set.

    ``name`` defaults to the file name (a folder's name + ``.zip``). A name in use is a Conflict unless
    ``force``, which adds a new version of that asset (its id stays, so monitors naming it see the new data).
    """
    source = check_source(path, option)
    name = name or asset_name(source)
    choice = _decide(space, name, force, None)
    scratch: list[Path] = []

    def pack() -> Path:
        if source.is_file():
            return source
        scratch.append(space.scratch_path(name))
        return zip_folder(source, scratch[-1])

    try:
        return _store(space, pack(), pack, name, "data", FOLDER if source.is_dir() else FILE, choice, force)
    finally:
        for leftover in scratch:
            leftover.unlink(missing_ok=True)

