"""``deploy create|update|list|view|logs|update-profile|traffic|rollout|export|start|stop|delete``: inference
services (seed 000/001), the traffic split of the endpoints in front of them and rollouts between them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click
import yaml

from pipeline_utils.backends import get_deploy_target
from pipeline_utils.cli.common import finish_notebook_command, parse_pairs, report_mode_option, save_notebook_option
from pipeline_utils.cli.endpoint_cmds import format_map, parse_percents, show_split
from pipeline_utils.cli.output import emit_record, emit_table, json_option, note
from pipeline_utils.cli.rollout_cmds import start_command as rollout_command
from pipeline_utils.deploy.base import DeploymentTarget
from pipeline_utils.errors import BadInput, Conflict, PipelineError
from pipeline_utils.notebooks import run_notebook

name_option = click.option("--name", required=True, help="Deployment name.")
custom_arg_option = click.option("--custom-arg", "custom_args", multiple=True, metavar="K=V",
                                 help="Variable for the kernel (module-level name and env var; value kept secret).")
kernel_setting_option = click.option(
    "--kernel-setting", "kernel_settings", multiple=True, metavar="NAME=VALUE",
    help="Plain variable for the kernel (module-level name and env var; not a secret: stored, shown by "
         "'deploy view', kept across restarts). Repeatable.",
)


@click.group()
def deploy() -> None:
    """Deploy staged models as inference services and manage them."""


@deploy.command("create")
@name_option
@click.option("--model-asset-id", required=True, help="Model asset id (key of the metadata entry).")
@click.option("--kernel-filename", default="kernel.py", show_default=True, help="Kernel file in the deployment folder.")
@custom_arg_option
@kernel_setting_option
@click.option("--ready-timeout", type=float, default=120, show_default=True, help="Seconds to wait for readiness.")
@save_notebook_option
@report_mode_option
@json_option
def create_command(name, model_asset_id, kernel_filename, custom_args, kernel_settings, ready_timeout, save_notebook,
                   report_mode, as_json) -> None:
    """Run A2: deploy the entry's pinned model and dependency versions, record what runs, test it.

    ``--name`` fills the entry's deployment name when the draft left it null; a name another entry holds is
    refused. Custom args are secrets (given again after a runtime restart); kernel settings are plain values the
    deployment keeps.
    """
    from pipeline_utils.deploy import steps

    secrets = parse_pairs(custom_args, "--custom-arg")
    settings = steps.kernel_settings(parse_pairs(kernel_settings, "--kernel-setting"), secrets,
                                     field="--kernel-setting")
    get_deploy_target().prepare()
    steps.read_entry(model_asset_id, name)
    _run_a2({"MODEL_ASSET_ID": model_asset_id, "DEPLOYMENT_NAME": name, "KERNEL_FILENAME": kernel_filename,
             "CUSTOM_ARG_NAMES": sorted(secrets), "KERNEL_SETTINGS": settings, "READY_TIMEOUT": ready_timeout,
             "UPDATE": False},
            secrets, "deploy create", save_notebook, report_mode, as_json)


@deploy.command("update")
@name_option
@click.option("--model-asset-id", default="",
              help="Entry whose pinned versions to deploy (default: the deployment's own entry).")
@click.option("--kernel-filename", default="kernel.py", show_default=True, help="Kernel file in the deployment folder.")
@click.option("--ready-timeout", type=float, default=120, show_default=True, help="Seconds to wait for readiness.")
@save_notebook_option
@report_mode_option
@json_option
def update_command(name, model_asset_id, kernel_filename, ready_timeout, save_notebook, report_mode, as_json) -> None:
    """Run A2 in place: move a deployment to the versions its entry pins now, without deleting it; record them.

    Its URL, profile and custom args stay; if the new version does not start, the previous one serves again.
    """
    from pipeline_utils.deploy.steps import entry_key, read_entry

    get_deploy_target().prepare()
    model_asset_id = entry_key(model_asset_id, name)
    read_entry(model_asset_id, name, update=True)
    _run_a2({"MODEL_ASSET_ID": model_asset_id, "DEPLOYMENT_NAME": name, "KERNEL_FILENAME": kernel_filename,
             "CUSTOM_ARG_NAMES": [], "READY_TIMEOUT": ready_timeout, "UPDATE": True},
            {}, "deploy update", save_notebook, report_mode, as_json)


def _run_a2(parameters: dict, secrets: dict, kind: str, save_notebook: bool, report_mode: bool,
            as_json: bool) -> None:
    result = run_notebook("A2_Deploy", parameters, secrets=secrets, kind=kind, report_mode=report_mode)
    finish_notebook_command(result, save_notebook)
    scraps = result.scraps()
    if as_json:
        emit_record({"run_id": result.run_id, "notebook": str(result.output_path), **scraps}, as_json=True)
    else:
        click.echo(scraps["deployment_url"])


@deploy.command("logs")
@name_option
@click.option("--tail", type=click.IntRange(min=0), help="Only the last K lines.")
def logs_command(name: str, tail: int | None) -> None:
    """Print a deployment's log lines (its kernels' output), oldest first, each prefixed with its kernel."""
    for line in get_deploy_target().logs(name, tail):
        click.echo(line)


def _row(row: dict) -> dict:
    return {**row, "kernels": f"{row.get('kernels_running', 0)}/{row.get('kernel_min')}/{row.get('kernel_max')}"}


@deploy.command("list")
@json_option
def list_command(as_json: bool) -> None:
    """List deployments: status, kernels running/min/max, URL, requests served, errors."""
    rows = get_deploy_target().list()
    if as_json:
        emit_table(rows, [], as_json=True)
        return
    columns = ["name", "status", "kernels", "url", "requests_served", "errors"]
    emit_table([_row(r) for r in rows], columns, as_json=False, title="deployments (kernels: running/min/max)")


@deploy.command("view")
@name_option
@json_option
def view_command(name: str, as_json: bool) -> None:
    """Show a deployment: status, profile (policy, resources, limits), kernel settings, custom-arg names, kernels."""
    emit_record(get_deploy_target().get(name), as_json=as_json, title=name)


def _parse_settings(settings: tuple[str, ...]) -> dict:
    changes = {}
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not sep or not key.strip():
            raise PipelineError(f"--set: expected KEY=VALUE such as policy.kernel_max=4 (got {setting!r})")
        parsed = yaml.safe_load(value) if value.strip() else None
        # JSON cannot carry YAML's .nan/.inf: pass the text on, so that the profile's check names the setting.
        changes[key.strip()] = value.strip() if isinstance(parsed, float) and not math.isfinite(parsed) else parsed
    return changes


@deploy.command("update-profile")
@name_option
@click.option("--set", "settings", multiple=True, required=True, metavar="KEY=VALUE",
              help="A profile setting, e.g. policy.kernel_max=4 (repeatable).")
@json_option
def update_profile_command(name: str, settings: tuple[str, ...], as_json: bool) -> None:
    """Change profile settings; applied live to a running deployment."""
    profile = get_deploy_target().update_profile(name, _parse_settings(settings))
    emit_record(profile, as_json=as_json, title=f"{name} profile")


@deploy.command("traffic")
@click.option("--endpoint", required=True, help="Endpoint name.")
@click.option("--set", "weights", multiple=True, metavar="D=W",
              help="Deployment D gets W % of the requests (repeatable). The map is replaced whole: integer weights "
                   "summing to exactly 100, attached deployments left out get 0, and the mirror is cleared unless "
                   "--mirror is given too.")
@click.option("--mirror", metavar="D=P",
              help="Copy P % (at most 50) of the requests to deployment D, which takes no live traffic; its answers "
                   "are discarded. Alone it keeps the current weights.")
@click.option("--no-mirror", is_flag=True, help="Stop mirroring, keeping the current weights.")
@json_option
def traffic_command(endpoint: str, weights: tuple[str, ...], mirror: str | None, no_mirror: bool,
                    as_json: bool) -> None:
    """Show an endpoint's traffic split, or set it (whole and atomically: on any error nothing changes).

    Without --set, --mirror or --no-mirror it shows the split. Only ready deployments get traffic; a pin header
    (x-mlops-deployment or azureml-model-deployment) reaches any attached deployment, even at 0 %.
    """
    traffic = parse_percents(weights, "--set")
    mirrors = parse_percents((mirror,) if mirror is not None else (), "--mirror")
    if mirror is not None and no_mirror:
        raise BadInput("give --mirror or --no-mirror, not both", field="--no-mirror")
    target = get_deploy_target()
    if not (weights or mirror is not None or no_mirror):
        show_split(target.get_endpoint(endpoint), as_json=as_json)
        return
    if weights:
        view = target.set_traffic(endpoint, traffic, mirrors)
    else:
        view = _set_mirror(target, endpoint, mirrors, "--no-mirror" if no_mirror else "--mirror")
    note(f"endpoint {endpoint}: traffic {format_map(view['traffic'])}, mirror {format_map(view['mirror'])}"
         f" (revision {view['revision']})")
    show_split(view, as_json=as_json)


deploy.add_command(rollout_command)

MIRROR_ATTEMPTS = 5


def _set_mirror(target: DeploymentTarget, endpoint: str, mirrors: dict[str, int], flag: str) -> dict[str, Any]:
    """Set a mirror on the endpoint's current weights, compare-and-set: when another change lands between the read
    and the write, read again and set on the newer weights (a few times), so that no change is reverted."""
    for _ in range(MIRROR_ATTEMPTS):
        current = target.get_endpoint(endpoint)
        if sum(current["traffic"].values()) != 100:
            raise BadInput(f"endpoint {endpoint!r} has no traffic split to keep; give one with --set", field=flag)
        try:
            return target.set_traffic(endpoint, current["traffic"], mirrors, expected_revision=current["revision"])
        except Conflict:
            if target.get_endpoint(endpoint)["revision"] == current["revision"]:
                raise  # refused for another reason than a change made meanwhile
    raise Conflict(f"endpoint {endpoint!r} changed {MIRROR_ATTEMPTS} times while the mirror was being set; try again",
                   field="--endpoint")


@deploy.command("export")
@click.option("--target", "target_name", required=True,
              help="The deploy target to write files for: k8s (Helm chart, container spec, KServe InferenceService) "
                   "or azureml (endpoint and deployment YAML, environment, score.py).")
@click.option("--name", "names", multiple=True, help="A deployment to export (repeatable).")
@click.option("--endpoint", help="Export an endpoint's deployments, with its traffic split in the target's terms.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="A new or empty folder to write into.")
def export_command(target_name: str, names: tuple[str, ...], endpoint: str | None, out: Path) -> None:
    """Write what another deploy target deploys from, for deployments or an endpoint; prints the files.

    Nothing is deployed or contacted: the pinned model and dependency versions come from the space, custom args
    become references to secrets (never values). Apply the files with the target's own tools.
    """
    from pipeline_utils.backends import available
    from pipeline_utils.deploy.steps import export_deployments

    if names and endpoint:
        raise BadInput("give deployments with --name or one endpoint with --endpoint, not both", field="--endpoint")
    if target_name not in available("deploy_target"):
        raise BadInput(f"{target_name!r} is not an installed deploy target ({', '.join(available('deploy_target'))})",
                       field="--target")
    for path in export_deployments(target_name, out, names, endpoint):
        click.echo(path)


@deploy.command("start")
@name_option
@custom_arg_option
def start_command(name: str, custom_args: tuple[str, ...]) -> None:
    """Start a stopped deployment (give its custom args again after a runtime restart)."""
    target = get_deploy_target()
    secrets = parse_pairs(custom_args, "--custom-arg")
    target.prepare()
    target.start(name, secrets or None)
    target.wait_ready(name)
    note(f"{name} is serving at {target.url(name)}")


@deploy.command("stop")
@name_option
def stop_command(name: str) -> None:
    """Stop a deployment: in-flight requests finish, then its kernels stop."""
    get_deploy_target().stop(name)
    note(f"{name} stopped")


@deploy.command("delete")
@name_option
@click.option("--remove-monitor", is_flag=True, help="Also delete the deployment's monitors.")
@click.option("--remove-config", is_flag=True, help="Also delete its metadata entry.")
def delete_command(name: str, remove_monitor: bool, remove_config: bool) -> None:
    """Delete a deployment; its metadata entry forgets the URL (or goes, with --remove-config)."""
    from pipeline_utils.deploy.steps import delete_deployment

    for line in delete_deployment(name, remove_monitors=remove_monitor, remove_config=remove_config):
        note(line)
