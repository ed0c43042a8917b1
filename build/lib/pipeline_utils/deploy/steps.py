"""The A2 deploy notebook's steps (seed 000), one function per cell.

Read the metadata entry, build the submission folder from the staged dependency and model
assets plus a generated ``model.json``, create the deployment with the entry's
``resource_configs``, start it, wait until ready, send the sample request, record the URL.
"""

from __future__ import annotations

import os
import shutil
import time
import zipfile
from pathlib import Path
from typing import Any

from pipeline_utils.backends import get_deploy_target, get_space
from pipeline_utils.config.settings import mlops_home
from pipeline_utils.deploy.submission import build_submission_folder, sample_request, unpack_dependency
from pipeline_utils.errors import PipelineError
from pipeline_utils.notebooks.display import Table

MODEL_FOLDER = "model"


def custom_args_from_env(names: list[str]) -> dict[str, str]:
    """The ``--custom-arg`` values, read from the environment by name (they are never parameters)."""
    missing = [name for name in names if name not in os.environ]
    if missing:
        raise PipelineError(f"CUSTOM_ARG_NAMES: environment variable {missing[0]!r} is not set")
    return {name: os.environ[name] for name in names}


def read_entry(model_asset_id: str, deployment_name: str | None) -> dict:
    """The metadata entry to deploy; refuses a name in use or an asset already deployed (like the seed)."""
    entry = get_space().entry(model_asset_id)
    wmla = entry["wmla_deployment"]
    name = deployment_name or wmla["deployment_name"]
    if wmla.get("deployment_url"):
        raise PipelineError(
            f"model asset {model_asset_id} is already deployed as {wmla['deployment_name']!r} "
            f"({wmla['deployment_url']}); delete that deployment first"
        )
    if get_deploy_target().exists(name):
        raise PipelineError(f"--name: deployment name {name!r} is already in use")
    from pipeline_utils.config.schema import entry_problems

    problems = entry_problems({**entry, "wmla_deployment": {**wmla, "deployment_name": name}})
    if problems:
        raise PipelineError(f"--name: {problems[0]}")
    return {**entry, "wmla_deployment": {**wmla, "deployment_name": name}}


def deployment_summary(entry: dict) -> Table:
    """The fields A2 uses (seed 000's table), for display."""
    wmla = entry["wmla_deployment"]
    rows = {
        "deployment_name": wmla["deployment_name"],
        "model_asset": entry.get("model_asset"),
        "dependency_filename": wmla.get("dependency_filename"),
        **{f"resource_configs.{k}": v for k, v in wmla["resource_configs"].items()},
    }
    return Table.of_record(rows, "deployment settings")


def _unpack_model(archive: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        unpack_dependency(archive, dest)
    else:
        shutil.copy2(archive, dest / archive.name)


def prepare_submission(entry: dict, *, kernel_filename: str = "kernel.py") -> Path:
    """Download dependency and model from the space; the submission folder holds both and ``model.json``."""
    space = get_space()
    name = entry["wmla_deployment"]["deployment_name"]
    work = mlops_home() / "deployments" / "submissions" / f"{name}-{int(time.time() * 1000)}"
    downloads = work / "downloads"
    downloads.mkdir(parents=True)
    dependency = space.download_asset(entry["wmla_deployment"]["dependency_filename"], downloads)
    unpacked = unpack_dependency(dependency, work / "dependency")
    submission = build_submission_folder(unpacked, work / "submission", name, kernel_filename=kernel_filename)
    model = space.download_asset(entry["model_asset"], downloads / "model-asset")
    _unpack_model(model, submission / MODEL_FOLDER)
    shutil.rmtree(downloads)
    files = sorted(p.name for p in submission.iterdir())
    print(f"submission folder {submission}: {', '.join(files)}")
    return submission


def create_and_start(
    entry: dict,
    submission: Path,
    *,
    custom_args: dict[str, str],
    kernel_filename: str = "kernel.py",
    ready_timeout: float = 120.0,
) -> dict[str, Any]:
    """Create the deployment with the entry's resource configs, start it and wait until it is ready."""
    target = get_deploy_target()
    wmla = entry["wmla_deployment"]
    name = wmla["deployment_name"]
    target.create(name, submission, wmla["resource_configs"], custom_args, kernel_filename=kernel_filename)
    started = time.perf_counter()
    target.start(name, custom_args)
    row = target.wait_ready(name, timeout=ready_timeout)
    print(f"{name} ready in {time.perf_counter() - started:.2f} s at {target.url(name)}")
    return row


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
    """Send the deployment folder's sample request, if it has one; returns status, seconds and answer."""
    payload = sample_request(submission)
    if payload is None:
        print("the deployment folder has no sample_request.json: nothing sent")
        return None
    started = time.perf_counter()
    status, answer = get_deploy_target().predict(name, payload)
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


def record_deployment(model_asset_id: str, name: str) -> dict:
    """Write ``deployment_name``, ``deployment_url`` and ``deployment_id`` into the metadata entry."""
    url = get_deploy_target().url(name)

    def change(entry: dict) -> dict:
        entry["deployment_id"] = name
        entry["wmla_deployment"]["deployment_name"] = name
        entry["wmla_deployment"]["deployment_url"] = url
        return entry

    return get_space().update_entry(model_asset_id, change)


def delete_deployment(
    name: str, *, remove_monitors: bool = False, remove_config: bool = False, missing_ok: bool = False
) -> list[str]:
    """Delete a deployment (and its monitors, or its metadata entry); returns one line per thing removed.

    The metadata entries that record the deployment (its name with a URL) are deleted with
    ``remove_config``, else they forget the URL (and the subscription, when the monitors go).
    """
    target, space = get_deploy_target(), get_space()
    exists = target.exists(name)
    if not exists and not missing_ok:
        raise PipelineError(f"--name: no deployment named {name!r}")
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
        if remove_monitors:
            entry["openscale_subscription_id"] = None
        return entry

    for key, entry in space.metadata().items():
        wmla = entry.get("wmla_deployment") or {}
        if wmla.get("deployment_name") != name or not wmla.get("deployment_url"):
            continue
        if remove_config:
            space.delete_entry(key)
            done.append(f"deleted metadata entry {key}")
        else:
            space.update_entry(key, forget)
    return done
