"""The A2 deploy notebook's steps (seed 000), one function per cell.

Read the metadata entry, download exactly the model and dependency versions it pins (sha256
checked), let the deploy target package them (for EDI: a submission folder with the model
under ``model/`` and a generated ``model.json``), create and start the deployment with the
entry's ``resource_configs`` (or move a running one to the new versions), record what it runs,
and send the sample request.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline_utils.backends import get_deploy_target, get_space
from pipeline_utils.config.names import (
    check_deployment_name,
    disjoint_kernel_values,
    kernel_values,
)
from pipeline_utils.config.settings import mlops_home
from pipeline_utils.deploy.base import DeployAssets, DownloadedAsset
from pipeline_utils.deploy.submission import sample_request
from pipeline_utils.errors import BadInput, Conflict, NotFound, PipelineError
from pipeline_utils.notebooks.display import Table
from pipeline_utils.space.base import Space, deployment_name_of
from pipeline_utils.timeutil import now_iso


def custom_args_from_env(names: list[str]) -> dict[str, str]:
    """The ``--custom-arg`` values, read from the environment by name (they are never parameters)."""
    missing = [name for name in names if name not in os.environ]
    if missing:
        raise BadInput(f"environment variable {missing[0]!r} is not set", field="CUSTOM_ARG_NAMES")
    return {name: os.environ[name] for name in names}


def kernel_settings(
    settings: Mapping[str, Any] | None, custom_args: Mapping[str, str], *, field: str = "KERNEL_SETTINGS"
) -> dict[str, str]:
    """The plain kernel settings (not secrets: stored, shown, kept across restarts), checked: Python identifiers
    as names, text as values, and no name that is also a custom arg."""
    checked = kernel_values(settings, field)
    disjoint_kernel_values(checked, custom_args, field)
    return checked


def entry_key(model_asset_id: str | None, deployment_name: str | None) -> str:
    """The model asset id of the entry to deploy: the one given, else the entry of the deployment."""
    if model_asset_id:
        return model_asset_id
    if not deployment_name:
        raise BadInput("give --model-asset-id or --name", field="--model-asset-id")
    return get_space().entry_for_deployment(deployment_name)[0]


def read_entry(model_asset_id: str, deployment_name: str | None, *, update: bool = False) -> dict:
    """The metadata entry to deploy, its deployment name filled in; refuses what the seed refuses.

    Creating: the entry must not be deployed yet, and the name must be free both among the entries and on the
    target. Updating (``update``): the deployment must exist, and the entry must be that deployment's or have
    no name yet (it then takes the deployment over from the entry that had it).
    """
    space = get_space()
    entry = space.entry(model_asset_id)
    wmla = entry["wmla_deployment"]
    own = wmla.get("deployment_name")
    name = deployment_name or own
    if not name:
        raise BadInput(f"entry {model_asset_id} has no deployment_name; give one with --name", field="--name")
    check_deployment_name(name, "--name")
    named = {**entry, "wmla_deployment": {**wmla, "deployment_name": name}}
    target = get_deploy_target()
    if update:
        if not target.exists(name):
            raise NotFound(f"no deployment named {name!r} to update; create it with 'deploy create'", field="--name")
        if own not in (None, name):
            raise Conflict(f"entry {model_asset_id} is deployment {own!r}, not {name!r}", field="--model-asset-id")
        return named
    if wmla.get("deployment_url"):
        raise Conflict(
            f"model asset {model_asset_id} is already deployed as {own!r} ({wmla['deployment_url']}); "
            f"move it to new versions with 'deploy update --name {own}', or delete that deployment first"
        )
    holder = space.deployment_name_holder(name, other_than=model_asset_id)
    if holder:
        raise Conflict(
            f"deployment name {name!r} belongs to metadata entry {holder}; a deployment name belongs to one entry only",
            field="--name",
        )
    if target.exists(name):
        raise Conflict(f"deployment name {name!r} is already in use", field="--name")
    return named


def _asset_named(space: Space, name: str | None, field: str) -> str:
    """The id of the one asset of this name (entries written by the original CLI name their assets only)."""
    if not name:
        raise BadInput("is empty: stage the entry with 'prepare stage' first", field=field)
    found = space.assets_named(name)
    if not found:
        raise NotFound(f"no asset named {name!r} in the space", field=field)
    if len(found) > 1:
        ids = ", ".join(asset.id for asset in found)
        raise Conflict(
            f"{len(found)} assets are named {name!r} ({ids}); the entry does not say which: "
            "stage it again to pin one by id",
            field=field,
        )
    return found[0].id


def resolve_pins(model_asset_id: str | None, entry: dict, space: Space | None = None) -> dict[str, tuple[str, int]]:
    """The (asset id, version) of the model and of the dependency the entry pins.

    Entries written by the original CLI pin nothing: a unique name resolves to its asset, at its latest version.
    """
    space = space or get_space()
    wmla = entry["wmla_deployment"]
    model_id = model_asset_id or _asset_named(space, entry.get("model_asset"), "model_asset")
    dependency_id = wmla.get("dependency_asset_id") or _asset_named(
        space, wmla.get("dependency_filename"), "wmla_deployment.dependency_filename"
    )
    return {
        "model": (model_id, entry.get("model_asset_version") or space.get_asset(model_id).version),
        "dependency": (dependency_id, wmla.get("dependency_asset_version") or space.get_asset(dependency_id).version),
    }


def deployment_summary(entry: dict) -> Table:
    """The fields A2 uses (seed 000's table), for display."""
    wmla = entry["wmla_deployment"]
    rows = {
        "deployment_name": wmla["deployment_name"],
        "model_asset": entry.get("model_asset"),
        "model_asset_version": entry.get("model_asset_version"),
        "dependency_filename": wmla.get("dependency_filename"),
        "dependency_asset_id": wmla.get("dependency_asset_id"),
        "dependency_asset_version": wmla.get("dependency_asset_version"),
        **{f"resource_configs.{k}": v for k, v in wmla["resource_configs"].items()},
    }
    return Table.of_record(rows, "deployment settings")


def _download(space: Space, asset_id: str, version: int, folder: Path) -> DownloadedAsset:
    asset = space.get_asset(asset_id)
    kind = asset.at_version(version).kind
    folder.mkdir(parents=True)
    path = space.download_asset(asset_id, folder, version=version)
    return DownloadedAsset(asset_id=asset_id, name=asset.name, version=version, kind=kind, path=path)


def download_assets(model_asset_id: str | None, entry: dict) -> DeployAssets:
    """Download exactly the model and dependency versions the entry pins; each is checked against its sha256."""
    space = get_space()
    pins = resolve_pins(model_asset_id, entry, space)
    root = mlops_home() / "deployments" / "downloads"
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{entry['wmla_deployment']['deployment_name']}-", dir=root))
    try:
        return DeployAssets(
            model=_download(space, *pins["model"], folder / "model"),
            dependency=_download(space, *pins["dependency"], folder / "dependency"),
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def package(entry: dict, assets: DeployAssets, *, kernel_filename: str = "kernel.py") -> Path:
    """Let the deploy target build what it deploys from; the downloads are removed afterwards."""
    try:
        folder = get_deploy_target().package(entry, assets, kernel_filename=kernel_filename)
    finally:
        shutil.rmtree(assets.model.path.parent.parent, ignore_errors=True)
    files = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else [folder.name]
    print(
        f"{folder}: {', '.join(files)} (model {assets.model.name} v{assets.model.version}, "
        f"dependency {assets.dependency.name} v{assets.dependency.version})"
    )
    return folder


def prepare_submission(entry: dict, *, kernel_filename: str = "kernel.py", model_asset_id: str | None = None) -> Path:
    """Download the pinned assets and package them (both A2 cells in one call)."""
    return package(entry, download_assets(model_asset_id, entry), kernel_filename=kernel_filename)


def create_and_start(
    entry: dict,
    submission: Path,
    *,
    custom_args: dict[str, str],
    settings: dict[str, str] | None = None,
    kernel_filename: str = "kernel.py",
    ready_timeout: float = 120.0,
) -> dict[str, Any]:
    """Create the deployment with the entry's resource configs, its secret custom args and plain kernel
    ``settings``, start it and wait until it is ready."""
    target = get_deploy_target()
    wmla = entry["wmla_deployment"]
    name = wmla["deployment_name"]
    target.create(
        name, submission, wmla["resource_configs"], custom_args, kernel_filename=kernel_filename,
        settings=kernel_settings(settings, custom_args),
    )
    started = time.perf_counter()
    target.start(name, custom_args)
    row = target.wait_ready(name, timeout=ready_timeout)
    print(f"{name} ready in {time.perf_counter() - started:.2f} s at {target.url(name)}")
    return row


def update_in_place(
    entry: dict, submission: Path, *, kernel_filename: str = "kernel.py", ready_timeout: float = 120.0
) -> dict[str, Any]:
    """Move the running deployment to the new folder (its kernels restart; the target rolls back on failure)."""
    name = entry["wmla_deployment"]["deployment_name"]
    started = time.perf_counter()
    row = get_deploy_target().update(name, submission, kernel_filename=kernel_filename, timeout=ready_timeout)
    print(f"{name} updated in {time.perf_counter() - started:.2f} s ({row.get('status', 'updated')})")
    return row


def deploy(
    model_asset_id: str,
    entry: dict,
    submission: Path,
    assets: DeployAssets,
    *,
    update: bool = False,
    custom_args: dict[str, str] | None = None,
    settings: dict[str, str] | None = None,
    kernel_filename: str = "kernel.py",
    ready_timeout: float = 120.0,
) -> dict:
    """Create and start the deployment (``update``: move the existing one, which keeps its custom args and
    settings), then record what it runs."""
    if update:
        if custom_args or settings:
            raise BadInput(
                "an update keeps the deployment's custom args and kernel settings; give them when creating it",
                field="KERNEL_SETTINGS" if settings else "CUSTOM_ARG_NAMES",
            )
        update_in_place(entry, submission, kernel_filename=kernel_filename, ready_timeout=ready_timeout)
    else:
        create_and_start(
            entry, submission, custom_args=custom_args or {}, settings=settings, kernel_filename=kernel_filename,
            ready_timeout=ready_timeout,
        )
    return record_deployment(model_asset_id, entry["wmla_deployment"]["deployment_name"], assets)


def profile_table(name: str) -> Table:
    """The deployment profile (policy, resources, limits) as a table."""
    profile = get_deploy_target().get_profile(name)
    rows = {
        f"{section}.{key}": value
        for section, values in profile.items()
        if isinstance(values, dict)
        for key, value in values.items()
    }
    return Table.of_record(rows, f"{name} profile")


def send_sample_request(name: str, submission: Path) -> dict[str, Any] | None:
    """Send the deployment folder's sample request, if it has one and the deployment serves; status, seconds, answer."""
    payload = sample_request(submission)
    if payload is None:
        print("the deployment folder has no sample_request.json: nothing sent")
        return None
    target = get_deploy_target()
    if target.get(name).get("status") == "stopped":
        print(f"{name} is stopped: sample request not sent")
        return None
    started = time.perf_counter()
    status, answer = target.predict(name, payload)
    seconds = time.perf_counter() - started
    if status != 200:
        raise PipelineError(f"sample request to {name} answered HTTP {status}: {str(answer)[:300]}")
    return {"status": status, "seconds": round(seconds, 3), "answer": answer}


def show_answer(result: dict[str, Any] | None):
    """Show a kernel's answer: images inline (base64 PNGs), the rest as JSON."""
    if result is None:
        return None
    import json

    from IPython.display import HTML

    answer = result["answer"]
    images = answer.get("images", {}) if isinstance(answer, dict) else {}
    rest = {k: v for k, v in answer.items() if k != "images"} if isinstance(answer, dict) else answer
    html = [
        f"<p>HTTP {result['status']} in {result['seconds']} s</p>",
        f"<pre>{json.dumps(rest, indent=2)[:4000]}</pre>",
    ]
    for filename, data in images.items():
        html.append(
            f"<figure style='display:inline-block;margin:4px'><img src='data:image/png;base64,{data}' "
            f"width='192'/><figcaption>{filename}</figcaption></figure>"
        )
    return HTML("".join(html))


def shift_traffic(
    endpoint: str, traffic: Mapping[str, int], mirror: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """Set an endpoint's split whole (a canary's steps: 100/0, 90/10, 0/100); returns the endpoint as stored.

    The target checks every rule before anything changes (see ``DeploymentTarget.set_traffic``).
    """
    view = get_deploy_target().set_traffic(endpoint, traffic, mirror)
    shown = ", ".join(f"{name} {weight} %" for name, weight in view["traffic"].items())
    mirrored = "".join(f"; mirror {percent} % to {name}" for name, percent in view["mirror"].items())
    print(f"endpoint {endpoint}: {shown}{mirrored}")
    return view


def canary_check(endpoint: str, deployment: str, payload: Any) -> dict[str, Any]:
    """Send one request to the endpoint pinned to ``deployment`` (even at 0 %) before it gets traffic.

    Returns status, served_by, seconds and answer; a status other than 200, or an answer from another
    deployment, is an error, so that a notebook stops before shifting traffic to a deployment that fails.
    """
    started = time.perf_counter()
    status, served_by, answer = get_deploy_target().predict_endpoint(endpoint, payload, deployment)
    seconds = time.perf_counter() - started
    if status != 200:
        raise PipelineError(f"canary request to {deployment} on endpoint {endpoint} answered HTTP {status}: "
                            f"{str(answer)[:300]}")
    if served_by != deployment:
        raise PipelineError(f"canary request pinned to {deployment} on endpoint {endpoint} was served by "
                            f"{served_by!r}")
    print(f"{deployment} answered on endpoint {endpoint} in {seconds:.3f} s")
    return {"status": status, "served_by": served_by, "seconds": round(seconds, 3), "answer": answer}


def _released(entry: dict) -> dict:
    """An entry whose deployment another entry takes over: it no longer names or runs one."""
    entry = copy.deepcopy(entry)
    entry["deployment_id"] = None
    entry["openscale_subscription_id"] = None
    entry["wmla_deployment"].update(deployment_name=None, deployment_url=None, deployed=None)
    return entry


def record_deployment(model_asset_id: str, name: str, assets: DeployAssets | None = None) -> dict:
    """Record in the entry the deployment's name, URL and id, and what it runs (``deployed``: ids, versions, time).

    ``assets`` are the versions deployed (default: those the entry pins now). An entry that had the deployment
    before (``deploy update --model-asset-id`` of another entry) gives it up in the same write, subscription too.
    """
    space, url = get_space(), get_deploy_target().url(name)
    if assets is not None:
        pins = {"model": (assets.model.asset_id, assets.model.version),
                "dependency": (assets.dependency.asset_id, assets.dependency.version)}
    else:
        pins = resolve_pins(model_asset_id, space.entry(model_asset_id), space)
    deployed = {
        "model_asset_id": pins["model"][0],
        "model_asset_version": pins["model"][1],
        "dependency_asset_id": pins["dependency"][0],
        "dependency_asset_version": pins["dependency"][1],
        "deployed_at": now_iso(),
    }

    def change(entry: dict) -> dict:
        entry["deployment_id"] = name
        entry["wmla_deployment"].update(deployment_name=name, deployment_url=url, deployed=deployed)
        return entry

    document = space.metadata()
    previous = [key for key, entry in document.items() if key != model_asset_id and deployment_name_of(entry) == name]
    if not previous:
        return space.update_entry(model_asset_id, change)
    mine = change(copy.deepcopy(space.entry(model_asset_id)))
    subscriptions = [document[key].get("openscale_subscription_id") for key in previous]
    mine["openscale_subscription_id"] = mine.get("openscale_subscription_id") or next(filter(None, subscriptions), None)
    space.put_entries({**{key: _released(document[key]) for key in previous}, model_asset_id: mine}, overwrite=True)
    return mine


def delete_deployment(
    name: str, *, remove_monitors: bool = False, remove_config: bool = False, missing_ok: bool = False
) -> list[str]:
    """Delete a deployment (and its monitors, or its metadata entry); returns one line per thing removed.

    The metadata entries that record the deployment (its name with a URL) are deleted with
    ``remove_config``, else they forget the URL and what it ran (and the subscription, when the monitors go).
    """
    target, space = get_deploy_target(), get_space()
    exists = target.exists(name)
    if not exists and not missing_ok:
        raise NotFound(f"no deployment named {name!r}", field="--name")
    done = []
    if remove_monitors:
        from pipeline_utils.monitor import delete_monitors, list_monitors

        if list_monitors(name):
            done.append(f"deleted monitor(s) {', '.join(delete_monitors(name))} of {name}")
    if exists:
        target.delete(name)
        done.append(f"deleted deployment {name}")

    def forget(entry: dict) -> dict:
        entry["deployment_id"] = None
        entry["wmla_deployment"]["deployment_url"] = None
        entry["wmla_deployment"]["deployed"] = None
        if remove_monitors:
            entry["openscale_subscription_id"] = None
        return entry

    for key, entry in space.metadata().items():
        wmla = entry.get("wmla_deployment") or {}
        if wmla.get("deployment_name") != name or not (wmla.get("deployment_url") or wmla.get("deployed")):
            continue
        if remove_config:
            space.delete_entry(key)
            done.append(f"deleted metadata entry {key}")
        else:
            space.update_entry(key, forget)
    return done


def export_deployments(
    target_name: str, out: str | Path, names: Sequence[str] = (), endpoint: str | None = None
) -> list[Path]:
    """Write the files another deploy target deploys from, for deployments or for an endpoint and its split.

    The metadata entries and the pinned asset versions come from the space; kernel file, custom-arg names (never
    values) and kernel settings from the deployment on the configured target when it has it. Files only.
    """
    from pipeline_utils.deploy.base import ExportedDeployment, TrafficSplit, free_export_path

    out = free_export_path(out)
    exporter = get_deploy_target(target_name)
    source = get_deploy_target()
    split = None
    if endpoint:
        view = source.get_endpoint(endpoint)
        names = view["deployments"]
        split = TrafficSplit(endpoint, view["traffic"], view["mirror"])
    if not names:
        raise BadInput("give deployments with --name, or an endpoint with --endpoint", field="--name")
    exported = []
    try:
        for name in dict.fromkeys(names):
            key = entry_key(None, name)
            entry = get_space().entry(key)
            entry["wmla_deployment"]["deployment_name"] = name
            running = source.get(name) if source.exists(name) else {}
            exported.append(
                ExportedDeployment(
                    name=name,
                    entry=entry,
                    assets=download_assets(key, entry),
                    kernel_filename=Path(running.get("entry") or "kernel.py").name,
                    custom_arg_names=tuple(running.get("custom_arg_names") or ()),
                    settings=dict(running.get("settings") or {}),
                )
            )
        return exporter.export(exported, out, split)
    finally:
        for item in exported:
            shutil.rmtree(item.assets.model.path.parent.parent, ignore_errors=True)
