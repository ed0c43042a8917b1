"""The master notebook's steps, one function per cell: draft, validate, stage, run the pipeline notebooks."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from pipeline_utils.backends import get_deploy_target
from pipeline_utils.config.metadata import draft_entry, draft_metadata, dump_yaml, load_yaml_file
from pipeline_utils.config.settings import mlops_home
from pipeline_utils.errors import BadInput, PipelineError
from pipeline_utils.fsutil import atomic_write_text
from pipeline_utils.notebooks.record import glue
from pipeline_utils.notebooks.runner import PROJECT_ROOT, NotebookResult, notebook_path, run_notebook
from pipeline_utils.space import StageResult, get_space, stage
from pipeline_utils.space.staging import check_source


def project_path(path: str | Path) -> Path:
    """Resolve a user path: absolute as is; relative to the working folder, else to the project root."""
    path = Path(path).expanduser()
    if path.is_absolute() or path.exists():
        return path.resolve()
    return (PROJECT_ROOT / path).resolve()


def _bad(label: str, exc: PipelineError) -> BadInput:
    """The error re-labelled with the input it is about (a CLI option or a notebook parameter)."""
    message = str(exc)
    for prefix in (f"{label}: ", "--path-yml: "):
        message = message.removeprefix(prefix)
    return BadInput(message, field=label)


def _existing(path: str | Path, label: str) -> Path:
    """The resolved path; one that exists neither here nor under the project root is named as the user gave it."""
    resolved = project_path(path)
    if not resolved.exists():
        raise BadInput(f"{path}: no such file or folder", field=label)
    return resolved


def _check_draft(path_yml: str | Path, label: str) -> None:
    path = _existing(path_yml, label)
    try:
        entry = draft_entry(load_yaml_file(path), path)
    except PipelineError as exc:
        raise _bad(label, exc) from None
    if not (entry.get("wmla_deployment") or {}).get("deployment_name"):
        raise BadInput(f"{path}: wmla_deployment.deployment_name: the pipeline needs a deployment name", field=label)


def _check_scripts(scripts_dir: str | Path, main_file: str, label: Callable[[str], str]) -> None:
    folder = _existing(scripts_dir, label("scripts_dir"))
    if not folder.is_dir():
        raise BadInput(f"{folder}: is not a folder", field=label("scripts_dir"))
    main = (folder / main_file).resolve()
    if folder not in main.parents or not main.is_file():
        raise BadInput(f"{main_file!r} is not a file in {folder}", field=label("main_file"))


def _check_source(path: str | Path | None, label: str, what: str, *, folder: bool = False) -> None:
    if not path:
        raise BadInput(f"required ({what})", field=label)
    resolved = _existing(path, label)
    if folder and not resolved.is_dir():
        raise BadInput(f"{path}: is not a folder ({what})", field=label)
    try:
        check_source(resolved, label)
    except PipelineError as exc:
        raise _bad(label, exc) from None


def check_inputs(
    *,
    train: bool,
    scripts_dir: str | Path,
    main_file: str,
    path_model: str | Path | None,
    path_dependency: str | Path | None,
    path_yml: str | Path | None,
    label: Callable[[str], str] = str.upper,
) -> None:
    """Check every input of a pipeline run before anything trains or is stored: the draft YAML (validated),
    the training scripts and main file (when training), the model (when not) and the deployment folder.

    A bad one is a BadInput naming it by ``label(name)`` (the notebook's parameter by default; the CLI passes
    its option names).
    """
    if path_yml:
        _check_draft(path_yml, label("path_yml"))
    if train:
        _check_scripts(scripts_dir, main_file, label)
    else:
        _check_source(path_model, label("path_model"), "the model to deploy, when not training")
    _check_source(path_dependency, label("path_dependency"), "the deployment folder: kernel file, README.md, ...",
                  folder=True)


def draft_from_config(
    path_yml: str | Path | None,
    *,
    model_name: str,
    deployment_name: str,
    resource_configs: dict | None = None,
    monitors: dict[str, dict] | None = None,
) -> dict:
    """The draft entry: read from ``path_yml`` when given, else made from the user configuration."""
    if path_yml:
        path = project_path(path_yml)
        return draft_entry(load_yaml_file(path), path)
    return draft_metadata(
        model_name=model_name, deployment_name=deployment_name, resource_configs=resource_configs, monitors=monitors
    )


def save_draft(draft: dict) -> Path:
    """Write the draft to ``$MLOPS_HOME/drafts/<deployment>.yml`` (what staging reads)."""
    name = draft["wmla_deployment"]["deployment_name"]
    return atomic_write_text(mlops_home() / "drafts" / f"{name}.yml", dump_yaml(draft))


def stage_assets(
    path_model: str | Path, path_dependency: str | Path, path_yml: str | Path, *, force: bool,
    model_asset_name: str | None = None,
) -> StageResult:
    """Stage model and deployment folder with the draft; no prompts (``force`` decides overwrites)."""
    return stage(get_space(), project_path(path_model), project_path(path_dependency), path_yml, force=force,
                 model_asset_name=model_asset_name)


def assets_table():
    """The space's assets as a pandas DataFrame, for display."""
    import pandas as pd

    rows = [asset.as_dict() for asset in get_space().list_assets()]
    return pd.DataFrame(rows, columns=["name", "asset_type", "id", "version", "size", "updated_at"])


def show_yaml(document: dict):
    """A YAML rendering of a document for notebook display."""
    from IPython.display import Markdown

    return Markdown(f"```yaml\n{dump_yaml(document)}```")


def run_pipeline_step(
    name: str, parameters: dict, *, secrets: dict[str, str] | None = None, report_mode: bool = False
) -> NotebookResult | None:
    """Run one pipeline notebook through the runner; a notebook this version lacks is reported and skipped."""
    if not notebook_path(name).is_file():
        print(f"{name}: not part of this version yet; skipped")
        return None
    started = time.perf_counter()
    result = run_notebook(name, parameters, secrets=secrets, report_mode=report_mode)
    print(f"{name}: {result.status} in {time.perf_counter() - started:.1f} s -> {result.output_path}")
    if not result.ok:
        raise PipelineError(result.error)
    return result


def monitors_from_config(
    *, volume_display_name: str, dir_gt: str, dir_pred: str, most_recent: int, thresholds: dict[str, dict]
) -> dict[str, dict] | None:
    """The ``openscale_custom_metric_provider`` mapping: one monitor per non-empty threshold set."""
    monitors = {
        monitor_id: {
            "dir_gt": dir_gt,
            "dir_pred": dir_pred,
            "most_recent": most_recent,
            "volume_display_name": volume_display_name,
            "thresholds": monitor_thresholds,
        }
        for monitor_id, monitor_thresholds in thresholds.items()
        if monitor_thresholds
    }
    return monitors or None


def run_summary():
    """The notebooks of the current run (status, duration, executed copy) as a pandas DataFrame."""
    import os

    import pandas as pd

    from pipeline_utils.notebooks.runner import RUN_ID_ENV
    from pipeline_utils.notebooks.runs import get_run

    run_id = os.environ.get(RUN_ID_ENV)
    if not run_id:
        print("not running under the pipeline runner: each step above made a run of its own (see 'runs list')")
        return None
    rows = [
        {"notebook": nb.notebook, "status": nb.status, "seconds": nb.duration_s, "executed copy": nb.path}
        for nb in get_run(run_id).notebooks
    ]
    return pd.DataFrame(rows)


def retire_deployment(deployment_name: str) -> None:
    """Before redeploying under the same name: delete the old deployment and forget its URL.

    Its monitors stay, with their history: A3 then updates them in place (``REPLACE_MONITORS``).
    """
    from pipeline_utils.deploy.steps import delete_deployment

    for line in delete_deployment(deployment_name, missing_ok=True):
        print(f"{line} (left by an earlier run)")


def has_monitors(model_asset_id: str) -> bool:
    """Whether the entry configures monitors (A3 has nothing to do otherwise)."""
    monitors = get_space().entry(model_asset_id).get("openscale_custom_metric_provider")
    if not monitors:
        print("no monitors in the metadata (openscale_custom_metric_provider): A3 skipped")
    return bool(monitors)


def write_example_evaluation_data(
    volume_name: str, *, count: int, size: int, input_dir: str, dir_gt: str, seed: int = 1000
) -> list[str]:
    """Write the image example's synthetic tiles to ``input_dir`` and their ground truth to ``dir_gt`` on the volume.

    Stands in for the images and annotations a lab would put on the storage volume (created when missing);
    written through the storage-volumes interface, so it works wherever the volume lives.
    """
    import importlib.util
    import tempfile

    from pipeline_utils.volumes import clean_path, get_volumes

    spec = importlib.util.spec_from_file_location("ihc_synthetic", PROJECT_ROOT / "examples" / "ihc" / "synthetic.py")
    synthetic = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(synthetic)
    targets = {"images": clean_path(input_dir, "input_dir"), "masks": clean_path(dir_gt, "dir_gt")}
    volumes = get_volumes()
    volumes.create_volume(volume_name)
    volume = volumes.volume(volume_name)
    with tempfile.TemporaryDirectory(prefix="eval-data-") as scratch:
        names = synthetic.write_dataset(scratch, n=count, size=size, seed=seed)
        for source, target in targets.items():
            for name in names:
                volume.write_bytes(f"{target}/{name}", (Path(scratch) / source / name).read_bytes())
    print(f"wrote {len(names)} images to {input_dir} and their ground truth to {dir_gt} on volume {volume_name}")
    return names


def volume_file(volume_name: str, relative: str) -> bytes:
    """The content of a file on a storage volume (read through the volumes interface, wherever it lives)."""
    from pipeline_utils.volumes import volume

    return volume(volume_name).read_bytes(relative)


def monitor_status_table(deployment_name: str):
    """The deployment's monitor status (printed as the CLI prints it) as a table; glued for the CLI."""
    from pipeline_utils.monitor import format_status, list_monitors, monitor_status, status_table

    if not list_monitors(deployment_name):
        print(f"{deployment_name} has no monitors")
        return None
    statuses = monitor_status(deployment_name)
    text = format_status(statuses)
    print(text)
    glue("monitor_status", text)
    return status_table(statuses)


def check_canary_steps(percents: list[int], label: str) -> list[int]:
    """A canary's steps: increasing integer percents from 1 to 100 (e.g. 10, 50, 100); BadInput naming ``label``."""
    from pipeline_utils.rollout.plan import check_steps

    return check_steps(percents, label)


def canary_release(endpoint: str, deployment: str, path_dependency: str | Path, percents: list[int]):
    """Release ``deployment`` on ``endpoint`` as a canary: attach it at 0 %, test it pinned, then shift traffic.

    A rollout (:mod:`pipeline_utils.rollout`) with no hold and no monitor: each step of ``percents`` (e.g. 10,
    50, 100) gives the new deployment that share, the deployments live before sharing the rest as they did, and
    the deployment folder's sample request is sent pinned to it first and at each step; a failed request returns
    the traffic. A new endpoint (or one without a split) simply gets the deployment at 100 %. Returns the
    recorded steps as a table.
    """
    from pipeline_utils.deploy.steps import canary_check, shift_traffic
    from pipeline_utils.deploy.submission import sample_request
    from pipeline_utils.errors import NotFound
    from pipeline_utils.rollout import COMPLETED, plan_rollout, run_rollout
    from pipeline_utils.rollout.plan import live_before
    from pipeline_utils.rollout.steps import events_table

    percents = check_canary_steps(percents, "CANARY_STEPS")
    payload = sample_request(project_path(path_dependency))
    if payload is None:
        raise BadInput(f"{path_dependency} has no sample_request.json to test the canary with", field="PATH_DEPENDENCY")
    target = get_deploy_target()
    try:
        before = target.attach(endpoint, deployment)["traffic"]
    except NotFound:
        before = target.create_endpoint(endpoint, [deployment])["traffic"]
    if not live_before(before, deployment):
        import pandas as pd

        check = canary_check(endpoint, deployment, payload)
        view = shift_traffic(endpoint, {deployment: 100})
        return pd.DataFrame([{"step": f"{deployment} at 100 % (first release)", "traffic": view["traffic"],
                              "check": check["status"], "seconds": check["seconds"]}])
    ended = run_rollout(plan_rollout(endpoint, deployment, percents, 0, [], payload, target).id, target)
    if ended.state != COMPLETED:
        raise PipelineError(f"canary release of {deployment} on {endpoint} {ended.state}: {ended.reason}")
    return events_table(ended.id)
