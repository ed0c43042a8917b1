"""WMLA-style submission folders: an unpacked dependency folder plus a generated ``model.json``.

``model.json`` follows IBM WMLA's "create service" layout (name, kernel_path, readme, tag,
weight_path, runtime, schema_version, mk_environments, attributes).
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

from pipeline_utils.deploy.base import DeployAssets, DownloadedAsset
from pipeline_utils.deploy.flavours import detect
from pipeline_utils.errors import BadInput
from pipeline_utils.fsutil import atomic_write_text
from pipeline_utils.space.base import FOLDER

SAMPLE_REQUESTS = ("sample_request.json", "sample_input.json", "input.json")
MODEL_FOLDER = "model"


def unpack_dependency(archive: str | Path, dest: str | Path, *, strip_single_top: bool = True) -> Path:
    """Extract a zip into ``dest`` (refusing members that leave it); returns the folder holding its content.

    With ``strip_single_top`` a zip whose only member is one top folder (a user's own ``zip -r app.zip app``)
    gives that folder; zips the space made of a folder hold the folder's content and keep it as it is.
    """
    archive, dest = Path(archive), Path(dest)
    if not zipfile.is_zipfile(archive):
        raise BadInput(f"{archive.name} is not a zip archive")
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            target = (root / member).resolve()
            if target != root and root not in target.parents:
                raise BadInput(f"{archive.name}: member {member!r} leaves the extraction folder")
        zf.extractall(root)
    entries = [p for p in root.iterdir() if not p.name.startswith("__MACOSX")]
    if strip_single_top and len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return root


def place_model(model: DownloadedAsset, dest: str | Path) -> Path:
    """Put the model into ``dest``: a folder we zipped is unpacked as it was, a file keeps its name, unextracted.

    Zip-format model files (``.pt``, ``.keras``, ``.npz``, a user's ``.zip``) are files: they stay whole.
    Assets stored before kinds were recorded are unpacked only when named ``*.zip``, as then.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    legacy_zip = model.kind is None and model.name.endswith(".zip") and zipfile.is_zipfile(model.path)
    if model.kind == FOLDER or legacy_zip:
        unpack_dependency(model.path, dest, strip_single_top=False)
    else:
        shutil.copyfile(model.path, dest / model.name)
    return dest


def model_json(
    name: str,
    *,
    kernel_filename: str = "kernel.py",
    readme: str = "README.md",
    tag: str = "mlops",
    weight_path: str = "./",
    runtime: str = "dlipy3",
    attributes: list[dict[str, Any]] | None = None,
    mk_environments: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``model.json`` of a WMLA EDI service."""
    return {
        "name": name,
        "tag": tag,
        "runtime": runtime,
        "kernel_path": kernel_filename,
        "weight_path": weight_path,
        "readme": readme,
        "schema_version": "1",
        "mk_environments": mk_environments or [],
        "attributes": attributes or [],
    }


def build_submission_folder(
    dependency_dir: str | Path,
    dest: str | Path,
    name: str,
    *,
    kernel_filename: str = "kernel.py",
    extra_files: list[str | Path] | None = None,
    **model_fields: Any,
) -> Path:
    """Copy the unpacked dependency folder to ``dest`` and write its ``model.json``; returns ``dest``."""
    source, dest = Path(dependency_dir), Path(dest)
    if not source.is_dir():
        raise BadInput(f"dependency folder {source} does not exist")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest)
    for extra in extra_files or []:
        shutil.copy2(extra, dest / Path(extra).name)
    try:
        _, kernel_filename = detect(dest, kernel_filename)
    except BadInput:
        found = ", ".join(sorted(p.name for p in dest.iterdir())) or "nothing"
        raise BadInput(
            f"kernel file {kernel_filename} not found in the dependency folder (found: {found}); expected an EDI "
            "kernel, a scoring script with init() and run(), or an estimator config.yaml",
            field="--kernel-filename",
        ) from None
    readme = model_fields.pop("readme", "README.md")
    if not (dest / readme).is_file():
        atomic_write_text(dest / readme, f"# {name}\n\nDeployment {name}, kernel `{kernel_filename}`.\n")
    spec = model_json(name, kernel_filename=kernel_filename, readme=readme, **model_fields)
    atomic_write_text(dest / "model.json", json.dumps(spec, indent=2) + "\n")
    return dest


def edi_submission(name: str, assets: DeployAssets, work: str | Path, *, kernel_filename: str = "kernel.py") -> Path:
    """The WMLA EDI submission folder of deployment ``name`` under ``work``: the dependency's files, the model
    under ``model/`` and a generated ``model.json``."""
    work = Path(work)
    unpacked = unpack_dependency(
        assets.dependency.path, work / "dependency", strip_single_top=assets.dependency.kind != FOLDER
    )
    submission = build_submission_folder(unpacked, work / "submission", name, kernel_filename=kernel_filename)
    place_model(assets.model, submission / MODEL_FOLDER)
    return submission


def sample_request(folder: str | Path) -> Any | None:
    """The folder's sample request (``sample_request.json`` and similar), parsed, or None."""
    for candidate in SAMPLE_REQUESTS:
        path = Path(folder) / candidate
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except ValueError as exc:
                raise BadInput(f"{path.name} is not valid JSON: {exc}") from None
    return None
