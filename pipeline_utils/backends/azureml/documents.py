"""The YAML documents and the ``deploy.sh`` of an Azure ML export, as plain data (written by ``target.py``).

Paths in a deployment file are relative to the export folder, where Azure ML's CLI resolves them. Custom args
become references to a workspace connection's secrets (:func:`secret_reference`); nothing here sees a value.
"""

from __future__ import annotations

import hashlib
import shlex
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import yaml

from pipeline_utils.backends.azureml.mapping import Autoscale, Sizing

ENDPOINT_SCHEMA = "https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json"
DEPLOYMENT_SCHEMA = "https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json"
ENVIRONMENT_SCHEMA = "https://azuremlschemas.azureedge.net/latest/environment.schema.json"
SECRETS_READER_ROLE = "Azure Machine Learning Workspace Connection Secrets Reader"
INFERENCE_SERVER = "azureml-inference-server-http>=1.5,<2"
ESTIMATOR_PACKAGES = ("joblib", "numpy", "pyyaml", "scikit-learn")
RESERVED_VARIABLES = frozenset({"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "WORKER_COUNT"})
RESERVED_PREFIXES = ("AZUREML_", "MLOPS_", "REDHARE_", "MSD_")


def dump(document: Any) -> str:
    """YAML with sorted keys, so that a re-export diffs cleanly."""
    return yaml.safe_dump(document, sort_keys=True, default_flow_style=False, allow_unicode=True)


def connection_name(deployment: str) -> str:
    """The workspace connection holding a deployment's custom-arg values (the user creates it, see README.md)."""
    return f"{deployment}-custom-args"


def secret_reference(deployment: str, name: str) -> str:
    """Azure ML's secret-injection reference to custom arg ``name``: resolved in the container, never stored here."""
    return f"${{{{azureml://connections/{connection_name(deployment)}/credentials/{name}}}}}"


def endpoint_document(name: str, traffic: Mapping[str, int], mirror: Mapping[str, int]) -> dict:
    """``endpoint.yml``: a key-auth managed online endpoint with its traffic split (applied by ``deploy.sh`` once
    the deployments exist: Azure ML refuses traffic when an endpoint is created)."""
    document: dict[str, Any] = {
        "$schema": ENDPOINT_SCHEMA,
        "name": name,
        "auth_mode": "key",
        "description": f"mlops endpoint {name}",
        "traffic": dict(traffic),
    }
    if mirror:
        document["mirror_traffic"] = dict(mirror)
    return document


def pip_requirements(flavour: str, own: Sequence[str]) -> list[str]:
    """The scoring server, the estimator flavour's packages at the versions the local runtime served with, and
    the deployment's own ``requirements.txt`` lines."""
    pinned = [INFERENCE_SERVER]
    if flavour == "sklearn":
        pinned += [_pinned(package) for package in ESTIMATOR_PACKAGES]
    return [*pinned, *own]


def _pinned(package: str) -> str:
    try:
        return f"{package}=={version(package)}"
    except PackageNotFoundError:
        return package


def conda_document(deployment: str, requirements: Sequence[str]) -> dict:
    """``environment/conda.yaml``: this Python's minor version, pip and the requirements."""
    python = f"python={sys.version_info.major}.{sys.version_info.minor}"
    return {
        "name": f"{deployment}-env",
        "channels": ["conda-forge"],
        "dependencies": [python, "pip", {"pip": list(requirements)}],
    }


def environment_document(deployment: str, image: str, conda_text: str) -> dict:
    """``environment/environment.yml``: base image plus conda file; its version is a hash of both, so a changed
    environment gets a new version (Azure ML environment versions cannot change)."""
    digest = hashlib.sha256(f"{image}\n{conda_text}".encode()).hexdigest()[:12]
    return {
        "$schema": ENVIRONMENT_SCHEMA,
        "name": f"{deployment}-env",
        "version": digest,
        "image": image,
        "conda_file": "conda.yaml",
        "description": f"mlops deployment {deployment}: scoring server and the flavour's packages",
    }


def environment_variables(
    deployment: str, sizing: Sizing, settings: Mapping[str, str], custom_arg_names: Sequence[str]
) -> dict[str, str]:
    """The kernel's environment as the local runtime sets it: settings as values, custom args as secret
    references, the thread caps from ``n_cpus``, one scoring worker (one kernel) per instance."""
    threads = str(sizing.threads)
    variables = {name: str(value) for name, value in settings.items()}
    variables.update({name: secret_reference(deployment, name) for name in custom_arg_names})
    variables.update(
        {
            "MLOPS_KERNEL_GLOBALS": ",".join([*settings, *custom_arg_names]),
            "OMP_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
            "WORKER_COUNT": "1",
        }
    )
    return variables


def deployment_document(
    name: str, endpoint: str, sizing: Sizing, environment: str, variables: Mapping[str, str], tags: Mapping[str, str]
) -> dict:
    """``<name>.deployment.yml``: model and code folders, environment reference, instances, request settings."""
    return {
        "$schema": DEPLOYMENT_SCHEMA,
        "name": name,
        "endpoint_name": endpoint,
        "model": {"path": f"{name}/model"},
        "code_configuration": {"code": f"{name}/code", "scoring_script": "score.py"},
        "environment": environment,
        "instance_type": sizing.instance_type,
        "instance_count": sizing.instance_count,
        "scale_settings": {"type": "default"},
        "request_settings": {
            "request_timeout_ms": sizing.request_timeout_ms,
            "max_concurrent_requests_per_instance": 1,
        },
        "environment_variables": dict(variables),
        "tags": dict(tags),
    }


def deploy_script(endpoint: str, deployments: Sequence[tuple[str, Sizing]], secrets: bool) -> str:
    """``deploy.sh``: the ``az`` commands that create the endpoint (and, with custom args, let its identity read
    the workspace connections), the environments and deployments, the autoscale settings, then apply the split
    (the order Azure ML requires)."""
    quoted = shlex.quote(endpoint)
    lines = [
        "#!/usr/bin/env bash",
        f"# Creates Azure ML managed online endpoint {endpoint} from this folder (written by mlops deploy export).",
        "# Needs the az CLI with the ml extension and defaults: az configure --defaults group=RG workspace=WS.",
        "# Create each deployment's custom-args connection first (see the target's README): values are never here.",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        f"az ml online-endpoint create --name {quoted} --auth-mode key",
    ]
    if secrets:
        lines += [
            f'principal="$(az ml online-endpoint show --name {quoted} --query identity.principal_id --output tsv)"',
            'workspace="$(az ml workspace show --query id --output tsv)"',
            'az role assignment create --assignee-object-id "$principal" --assignee-principal-type ServicePrincipal'
            f' --role {shlex.quote(SECRETS_READER_ROLE)} --scope "$workspace"',
        ]
    for name, sizing in deployments:
        lines += [
            f"az ml environment create --file {shlex.quote(f'{name}/environment/environment.yml')}",
            f"az ml online-deployment create --file {shlex.quote(f'{name}.deployment.yml')}",
        ]
        if sizing.autoscale is not None:
            lines += _autoscale_lines(endpoint, name, sizing.autoscale)
    lines.append("az ml online-endpoint update --file endpoint.yml")
    return "\n".join(lines) + "\n"


def _autoscale_lines(endpoint: str, name: str, scale: Autoscale) -> list[str]:
    """Azure Monitor autoscale for ``kernel_max``: out on CPU, in after ``kernel_delay_release_time`` of low CPU."""
    setting = shlex.quote(f"{endpoint}-{name}-autoscale")
    resource = f'"$(az ml online-deployment show --endpoint-name {shlex.quote(endpoint)} --name {shlex.quote(name)}' \
        ' --query id --output tsv)"'
    return [
        f"az monitor autoscale create --name {setting} --resource {resource}"
        f" --min-count {scale.min_count} --max-count {scale.max_count} --count {scale.min_count}",
        f"az monitor autoscale rule create --autoscale-name {setting}"
        ' --condition "CpuUtilizationPercentage > 70 avg 5m" --scale out 1',
        f"az monitor autoscale rule create --autoscale-name {setting}"
        f' --condition "CpuUtilizationPercentage < 25 avg {scale.scale_in_minutes}m" --scale in 1',
    ]
