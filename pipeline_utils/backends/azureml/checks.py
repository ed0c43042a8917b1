"""Checks of an Azure ML export: what azure-ai-ml's loaders miss, run by the export before its folder is kept.

``load_online_endpoint`` / ``load_online_deployment`` catch unknown keys, bad types, traffic over 100 and bad
auth modes, but not a missing code folder or scoring script, traffic summing below 100, a mirror Azure refuses, or
a request timeout out of range (measured, see shared/reference/targets.md). :func:`folder_problems` checks those
on the written files; :func:`sdk_problems` runs Azure's loaders where the ``azureml`` extra is installed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from pipeline_utils.backends.azureml.mapping import MAX_REQUEST_TIMEOUT_MS
from pipeline_utils.deploy.base import TrafficSplit
from pipeline_utils.deploy.traffic import MAX_MIRROR_PERCENT, check_split
from pipeline_utils.errors import BadInput

ENDPOINT_FILE = "endpoint.yml"
DEPLOYMENT_SUFFIX = ".deployment.yml"
AZURE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]$")
AZURE_NAME_RULE = "must be 3-32 letters, digits and hyphens, starting with a letter and not ending with a hyphen"

Problem = tuple[str, str]


def check_name(name: str, field: str) -> None:
    """An endpoint or deployment name Azure ML accepts (its rule is narrower than the local one)."""
    if not AZURE_NAME.match(name):
        raise BadInput(f"{name!r} {AZURE_NAME_RULE} on Azure ML", field=field)


def checked_split(split: TrafficSplit, names: Iterable[str]) -> tuple[dict[str, int], dict[str, int]]:
    """The split's traffic and mirror maps under the local runtime's rules (Azure ML's are the same: integer
    weights summing to 100, one mirror of at most 50 % to a deployment at 0 %), over the exported deployments."""
    exported = set(names)
    return check_split(dict(split.traffic), dict(split.mirror), exported.__contains__, lambda _: "ready")


def split_problems(traffic: Any, mirror: Any, deployments: set[str]) -> list[Problem]:
    """What Azure ML would refuse in an endpoint's ``traffic`` and ``mirror_traffic`` maps."""
    problems: list[Problem] = []
    if not isinstance(traffic, Mapping) or not traffic:
        return [("traffic", "must map the endpoint's deployments to integer percents")]
    for name, weight in traffic.items():
        if name not in deployments:
            problems.append((f"traffic.{name}", "no deployment file of that name in the export"))
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            problems.append((f"traffic.{name}", f"{weight!r} is not an integer percent from 0 to 100"))
    if not problems and sum(traffic.values()) != 100:
        problems.append(("traffic", f"weights must sum to exactly 100 (got {sum(traffic.values())})"))
    mirror = mirror or {}
    if not isinstance(mirror, Mapping) or len(mirror) > 1:
        return [*problems, ("mirror_traffic", "must map one deployment to a percent")]
    for name, percent in mirror.items():
        if name not in deployments:
            problems.append((f"mirror_traffic.{name}", "no deployment file of that name in the export"))
        if isinstance(percent, bool) or not isinstance(percent, int) or not 0 < percent <= MAX_MIRROR_PERCENT:
            problems.append((f"mirror_traffic.{name}", f"{percent!r} is not an integer from 1 to {MAX_MIRROR_PERCENT}"))
        if traffic.get(name):
            problems.append((f"mirror_traffic.{name}", "takes live traffic; mirror to a deployment at 0 %"))
    return problems


def deployment_problems(folder: Path, path: Path, document: Any, environments: set[str]) -> list[Problem]:
    """What Azure ML would miss or refuse late in one deployment file: folders, script, environment, timeout."""
    where = path.name
    if not isinstance(document, Mapping):
        return [(where, "is not a YAML mapping")]
    problems: list[Problem] = []
    code_configuration = document.get("code_configuration") or {}
    code = folder / str(code_configuration.get("code", ""))
    script = str(code_configuration.get("scoring_script", ""))
    if not code_configuration.get("code") or not code.is_dir():
        problems.append((f"{where}: code_configuration.code", f"{code} is not a folder"))
    elif not script or not (code / script).is_file():
        problems.append((f"{where}: code_configuration.scoring_script", f"{script!r} is not a file in {code.name}/"))
    model = (document.get("model") or {}).get("path") if isinstance(document.get("model"), Mapping) else None
    if not model or not (folder / str(model)).exists():
        problems.append((f"{where}: model.path", f"{model!r} does not exist in the export"))
    if document.get("environment") not in environments:
        problems.append((f"{where}: environment", f"{document.get('environment')!r} is not an environment file here"))
    timeout = (document.get("request_settings") or {}).get("request_timeout_ms")
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= MAX_REQUEST_TIMEOUT_MS:
        problems.append(
            (f"{where}: request_settings.request_timeout_ms", f"{timeout!r} is not from 1 to {MAX_REQUEST_TIMEOUT_MS}")
        )
    return problems


def environment_references(folder: Path) -> set[str]:
    """``azureml:<name>:<version>`` of every environment file in the export."""
    references = set()
    for path in sorted(folder.glob("*/environment/environment.yml")):
        document = yaml.safe_load(path.read_text()) or {}
        conda = path.parent / str(document.get("conda_file", ""))
        if document.get("conda_file") and conda.is_file():
            references.add(f"azureml:{document.get('name')}:{document.get('version')}")
    return references


def folder_problems(folder: str | Path) -> list[Problem]:
    """Every problem of an export folder that Azure ML's loaders do not catch, as (field, problem)."""
    folder = Path(folder)
    endpoint_path = folder / ENDPOINT_FILE
    if not endpoint_path.is_file():
        return [(ENDPOINT_FILE, "is missing")]
    endpoint = yaml.safe_load(endpoint_path.read_text()) or {}
    problems: list[Problem] = []
    names = set()
    environments = environment_references(folder)
    for path in sorted(folder.glob(f"*{DEPLOYMENT_SUFFIX}")):
        document = yaml.safe_load(path.read_text())
        problems += deployment_problems(folder, path, document, environments)
        if isinstance(document, Mapping):
            names.add(str(document.get("name")))
            if document.get("endpoint_name") != endpoint.get("name"):
                problems.append((f"{path.name}: endpoint_name", f"is not {endpoint.get('name')!r}"))
    return problems + [
        (f"{ENDPOINT_FILE}: {field}", problem)
        for field, problem in split_problems(endpoint.get("traffic"), endpoint.get("mirror_traffic"), names)
    ]


def check_folder(folder: str | Path) -> None:
    """Raise BadInput for the first problem of :func:`folder_problems`, naming its file and field."""
    problems = folder_problems(folder)
    if problems:
        field, problem = problems[0]
        raise BadInput(problem, field=field)


def sdk_problems(folder: str | Path) -> list[Problem] | None:
    """What azure-ai-ml's loaders refuse in the export's endpoint and deployment files; None without the extra."""
    try:
        from azure.ai.ml import load_online_deployment, load_online_endpoint
    except ImportError:
        return None
    folder = Path(folder)
    problems: list[Problem] = []
    for path, load in [
        (folder / ENDPOINT_FILE, load_online_endpoint),
        *((path, load_online_deployment) for path in sorted(folder.glob(f"*{DEPLOYMENT_SUFFIX}"))),
    ]:
        try:
            load(source=path)
        except Exception as exc:  # noqa: BLE001 - the SDK raises many types; each is a problem of that file
            problems.append((path.name, " ".join(str(exc).split()) or type(exc).__name__))
    return problems
