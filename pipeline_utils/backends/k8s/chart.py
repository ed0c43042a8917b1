"""The Helm chart of one deployment (seed 002's shape) and its manifests rendered with the chart's own values.

Helm is not needed to use an export: ``manifests/`` holds the chart's templates rendered with ``values.yaml`` by
:mod:`pipeline_utils.backends.k8s.gotemplate` (``kubectl apply -f manifests/``); with Helm, ``helm install NAME
chart/`` renders the same templates and lets users change values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipeline_utils import __version__
from pipeline_utils.backends.k8s.chart_templates import TEMPLATES
from pipeline_utils.backends.k8s.gotemplate import documents, render
from pipeline_utils.deploy.base import ExportedDeployment
from pipeline_utils.fsutil import atomic_write_text

VALUES_HEADER = """\
# Values of the chart of one deployment (written by `mlops deploy export --target k8s`; seed 002's shape).
# replicaCount, image, service, ingress and config are seed 002's sections; config is the estimator's config.yaml
# (mounted over the image's copy), empty for EDI kernels and scoring scripts. The rest comes from the deployment's
# resource_configs: profile is the runtime profile inside each pod (one kernel), resources and autoscaling its pod
# and HPA. customArgs names the Secret (and its keys) the custom args are read from: values never appear here.
"""
MANIFEST_TEMPLATES = tuple(name for name in TEMPLATES if name.endswith(".yaml"))


def dump(value: Any) -> str:
    """Deterministic block YAML (sorted keys)."""
    return yaml.safe_dump(value, sort_keys=True, default_flow_style=False)


def chart_metadata(deployment: ExportedDeployment) -> dict[str, Any]:
    """``Chart.yaml``: version 1.<model version>.<dependency version> (changes with the pinned assets), the
    runtime's version as appVersion."""
    assets = deployment.assets
    return {
        "apiVersion": "v2",
        "name": deployment.name,
        "description": f"Deployment {deployment.name} served by the mlops runtime",
        "type": "application",
        "version": f"1.{assets.model.version}.{assets.dependency.version}",
        "appVersion": __version__,
    }


def render_manifests(chart: dict[str, Any], values: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Each manifest template rendered with ``values`` (Helm's ``.Chart`` fields), as parsed documents."""
    context = {"Values": values, "Chart": {"Name": chart["name"], "Version": chart["version"],
                                            "AppVersion": chart["appVersion"]}}
    return {name: documents(render(TEMPLATES[name], context)) for name in MANIFEST_TEMPLATES}


def write_chart(folder: Path, chart: dict[str, Any], values: dict[str, Any]) -> None:
    """``chart/`` (Chart.yaml, values.yaml, templates/) and ``manifests/`` (what renders to a resource)."""
    templates = folder / "chart" / "templates"
    templates.mkdir(parents=True)
    atomic_write_text(folder / "chart" / "Chart.yaml", dump(chart))
    atomic_write_text(folder / "chart" / "values.yaml", VALUES_HEADER + dump(values))
    for name, text in TEMPLATES.items():
        atomic_write_text(templates / name, text)
    manifests = folder / "manifests"
    manifests.mkdir()
    for name, docs in render_manifests(chart, values).items():
        if docs:
            atomic_write_text(manifests / name, "---\n".join(dump(doc) for doc in docs))
