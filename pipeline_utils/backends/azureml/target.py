"""``AzureMLTarget``: exports deployments and an endpoint's split as Azure ML managed online endpoint files.

It writes files for ``az ml`` to apply and drives no workspace, so every other method of the interface answers
with a BadInput pointing at ``deploy export``. Every input is checked before the first file is written; the
written folder is checked again (:mod:`checks`) before it becomes ``out``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline_utils.backends.azureml import checks, codefolder, documents
from pipeline_utils.backends.azureml.mapping import Sizing, sizing
from pipeline_utils.deploy.base import (
    DeployAssets,
    ExportedDeployment,
    ExportOnlyTarget,
    TrafficSplit,
    export_folder,
    free_export_path,
)
from pipeline_utils.errors import BadInput


@dataclass(frozen=True)
class Plan:
    """One deployment's checked Azure settings, decided before anything is written."""

    deployment: ExportedDeployment
    sizing: Sizing
    variables: dict[str, str]
    tags: dict[str, str]


def kernel_variables(deployment: ExportedDeployment, mapped: Sizing) -> dict[str, str]:
    """The deployment's environment variables; BadInput for a setting or custom-arg name the export uses itself."""
    for kind, names in (("settings", deployment.settings), ("custom_args", deployment.custom_arg_names)):
        for name in names:
            if name in documents.RESERVED_VARIABLES or name.startswith(documents.RESERVED_PREFIXES):
                raise BadInput("is a variable the Azure ML scoring container sets itself; rename it",
                               field=f"{kind}.{name}")
    for name in deployment.custom_arg_names:
        if name in deployment.settings:
            raise BadInput("is both a setting and a custom arg", field=f"custom_args.{name}")
    return documents.environment_variables(
        deployment.name, mapped, deployment.settings, sorted(deployment.custom_arg_names)
    )


def asset_tags(assets: DeployAssets) -> dict[str, str]:
    """The pinned asset ids and versions the deployment was exported from, as Azure tags."""
    return {
        "mlops_model_asset_id": assets.model.asset_id,
        "mlops_model_asset_version": str(assets.model.version),
        "mlops_dependency_asset_id": assets.dependency.asset_id,
        "mlops_dependency_asset_version": str(assets.dependency.version),
    }


def endpoint_split(
    deployments: Sequence[ExportedDeployment], split: TrafficSplit | None
) -> tuple[str, dict[str, int], dict[str, int]]:
    """The endpoint name and its traffic and mirror maps over every exported deployment (checked)."""
    names = [deployment.name for deployment in deployments]
    if split is None:
        if len(names) != 1:
            raise BadInput(
                f"{len(names)} deployments and no endpoint: export an endpoint (its split says which takes the"
                " traffic) or one deployment",
                field="--endpoint",
            )
        return names[0], {names[0]: 100}, {}
    checks.check_name(split.endpoint, "--endpoint")
    traffic, mirror = checks.checked_split(split, names)
    return split.endpoint, {name: traffic.get(name, 0) for name in names}, mirror


class AzureMLTarget(ExportOnlyTarget):
    """Writes Azure ML managed online endpoint files (seed 004); see README.md beside this module."""

    name = "azureml"
    apply_with = "the az CLI (`bash DIR/deploy.sh` runs them in the order Azure needs)"

    def export(
        self, deployments: Sequence[ExportedDeployment], out: Path, split: TrafficSplit | None = None
    ) -> list[Path]:
        """Write ``endpoint.yml``, one ``<name>.deployment.yml`` and a ``<name>/`` folder (code, model,
        environment) per deployment, and ``deploy.sh``; returns the files written, sorted."""
        out = free_export_path(out)
        if not deployments:
            raise BadInput("nothing to export", field="--name")
        for deployment in deployments:
            checks.check_name(deployment.name, f"{deployment.name}: wmla_deployment.deployment_name")
        endpoint, traffic, mirror = endpoint_split(deployments, split)
        plans = []
        for deployment in deployments:
            mapped = sizing(deployment.entry)
            plans.append(Plan(deployment, mapped, kernel_variables(deployment, mapped), asset_tags(deployment.assets)))
        with export_folder(out) as staging:
            for plan in plans:
                self._write_deployment(staging, endpoint, plan)
            secrets = any(plan.deployment.custom_arg_names for plan in plans)
            document = documents.endpoint_document(endpoint, traffic, mirror)
            (staging / checks.ENDPOINT_FILE).write_text(documents.dump(document))
            sized = [(plan.deployment.name, plan.sizing) for plan in plans]
            script = documents.deploy_script(endpoint, sized, secrets)
            (staging / "deploy.sh").write_text(script)
            (staging / "deploy.sh").chmod(0o755)
            checks.check_folder(staging)
            refused = checks.sdk_problems(staging)
            if refused:
                raise BadInput(refused[0][1], field=refused[0][0])
            written = sorted(path.relative_to(staging) for path in staging.rglob("*") if path.is_file())
        return [out / path for path in written]

    @staticmethod
    def _write_deployment(staging: Path, endpoint: str, plan: Plan) -> None:
        """One deployment's folder (code, model, environment) and its deployment file."""
        name = plan.deployment.name
        folder = codefolder.write_code_folder(plan.deployment, staging / name)
        conda_text = documents.dump(
            documents.conda_document(name, documents.pip_requirements(folder.flavour, folder.requirements))
        )
        environment = documents.environment_document(name, plan.sizing.image, conda_text)
        (staging / name / "environment").mkdir()
        (staging / name / "environment" / "conda.yaml").write_text(conda_text)
        (staging / name / "environment" / "environment.yml").write_text(documents.dump(environment))
        reference = f"azureml:{environment['name']}:{environment['version']}"
        tags = {**plan.tags, "mlops_flavour": folder.flavour}
        document = documents.deployment_document(name, endpoint, plan.sizing, reference, plan.variables, tags)
        (staging / f"{name}{checks.DEPLOYMENT_SUFFIX}").write_text(documents.dump(document))
