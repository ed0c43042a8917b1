"""``endpoint create|list|view|delete|attach|detach``: a stable name and URL in front of deployments.

The split itself is ``deploy traffic`` (in :mod:`pipeline_utils.cli.deploy_cmds`); its parsing and its table
are here, next to the endpoint commands that show the same maps.
"""

from __future__ import annotations

import re
from typing import Any

import click

from pipeline_utils.backends import get_deploy_target
from pipeline_utils.cli.output import emit_record, emit_table, json_option, note
from pipeline_utils.errors import BadInput

PERCENT = re.compile(r"[0-9]{1,3}")

name_option = click.option("--name", required=True, help="Endpoint name.")
deployment_option = click.option("--deployment", required=True, help="Deployment name.")


def parse_percents(pairs: tuple[str, ...], option: str) -> dict[str, int]:
    """``DEPLOYMENT=PERCENT`` options into a map, refused before anything is sent when a percent is not an
    integer from 0 to 100 or a deployment is given twice."""
    parsed: dict[str, int] = {}
    for pair in pairs:
        name, sep, value = (part.strip() for part in pair.partition("="))
        if not sep or not name:
            raise BadInput(f"expected DEPLOYMENT=PERCENT such as blue=90 (got {pair!r})", field=option)
        if not PERCENT.fullmatch(value) or int(value) > 100:
            raise BadInput(f"{pair!r}: the percent must be an integer from 0 to 100", field=option)
        if name in parsed:
            raise BadInput(f"{pair!r}: deployment {name!r} is given twice", field=option)
        parsed[name] = int(value)
    return parsed


def format_map(values: dict[str, Any]) -> str:
    """A map per deployment in one line: ``blue=90 green=10``, or ``-`` when empty."""
    return " ".join(f"{name}={value}" for name, value in values.items()) or "-"


def show_split(view: dict[str, Any], *, as_json: bool) -> None:
    """An endpoint's split: one row per attached deployment (weight, mirror, status), or the endpoint as JSON."""
    if as_json:
        emit_record(view, as_json=True)
        return
    rows = [
        {
            "deployment": deployment,
            "weight": view["traffic"].get(deployment, 0),
            "mirror": view["mirror"].get(deployment),
            "status": view["status"].get(deployment),
        }
        for deployment in view["deployments"]
    ]
    title = f"endpoint {view['name']} at {view['url']} (weight and mirror in %)"
    emit_table(rows, ["deployment", "weight", "mirror", "status"], as_json=False, title=title)


@click.group()
def endpoint() -> None:
    """Manage endpoints: stable URLs in front of deployments.

    An endpoint routes each request to one of its attached deployments by its traffic split ('deploy traffic').
    """


@endpoint.command("create")
@name_option
@click.option("--deployment", "deployments", multiple=True,
              help="A deployment to attach at 0 % (repeatable; more can be attached later).")
def create_command(name: str, deployments: tuple[str, ...]) -> None:
    """Create an endpoint and print its URL; it answers 503 until 'deploy traffic --set' gives it a split."""
    view = get_deploy_target().create_endpoint(name, deployments)
    attached = ", ".join(view["deployments"]) or "no deployment"
    note(f"endpoint {name} created with {attached} attached at 0 %; "
         f"give it traffic with 'deploy traffic --endpoint {name} --set DEPLOYMENT=100'")
    click.echo(view["url"])


@endpoint.command("list")
@json_option
def list_command(as_json: bool) -> None:
    """List endpoints: URL, traffic split and mirror."""
    views = get_deploy_target().list_endpoints()
    if as_json:
        emit_table(views, [], as_json=True)
        return
    rows = [{"name": view["name"], "url": view["url"], "traffic": format_map(view["traffic"]),
             "mirror": format_map(view["mirror"])} for view in views]
    emit_table(rows, ["name", "url", "traffic", "mirror"], as_json=False, title="endpoints (percents)")


@endpoint.command("view")
@name_option
@json_option
def view_command(name: str, as_json: bool) -> None:
    """Show an endpoint: URL, attached deployments, traffic and mirror maps, each deployment's status."""
    view = get_deploy_target().get_endpoint(name)
    if not as_json:
        view = {"name": view["name"], "url": view["url"], "deployments": ", ".join(view["deployments"]) or "-",
                "traffic": format_map(view["traffic"]), "mirror": format_map(view["mirror"]),
                "status": format_map(view["status"])}
    emit_record(view, as_json=as_json, title=f"endpoint {name}")


@endpoint.command("delete")
@name_option
def delete_command(name: str) -> None:
    """Delete an endpoint; its deployments stay and keep serving at their own URLs."""
    get_deploy_target().delete_endpoint(name)
    note(f"deleted endpoint {name} (its deployments stay)")


@endpoint.command("attach")
@name_option
@deployment_option
def attach_command(name: str, deployment: str) -> None:
    """Attach a deployment at 0 %: reachable pinned (header x-mlops-deployment) before it gets traffic."""
    get_deploy_target().attach(name, deployment)
    note(f"attached {deployment} to endpoint {name} at 0 %")


@endpoint.command("detach")
@name_option
@deployment_option
def detach_command(name: str, deployment: str) -> None:
    """Detach a deployment; refused while it takes live or mirrored traffic (set its weight to 0 first)."""
    get_deploy_target().detach(name, deployment)
    note(f"detached {deployment} from endpoint {name}")
