"""The exported Helm chart under Helm itself (helm-python-sdk: Helm v4's library, offline, no cluster, no binary).

``helm lint --strict`` passes, and ``helm template`` renders exactly what our own renderer wrote to ``manifests/``
(parsed YAML documents, per template, order-insensitive) and the same NOTES.txt, for the exported values and for an
overridden value set: Helm and :mod:`pipeline_utils.backends.k8s.gotemplate` agree.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline_utils.backends.k8s.chart import render_manifests
from pipeline_utils.backends.k8s.chart_templates import TEMPLATES
from pipeline_utils.backends.k8s.gotemplate import documents, render
from pipeline_utils.backends.k8s.target import KubernetesTarget
from tests.targets.test_k8s_export import KUBERNETES_VERSION, exported, load_all

helm = pytest.importorskip("helm_python", reason="helm-python-sdk is not installed (requirements-k8s.txt)")

WARNING = 2
"""helm-python-sdk's lint severity for a warning (1 is info, 3 an error): strict lint fails on warnings too."""

OVERRIDES: dict[str, dict[str, Any]] = {
    "iris-logistic": {
        "replicaCount": 4,
        "image": {"repository": "registry.example.com/mlops/iris-logistic", "tag": "v2"},
        "imagePullSecrets": [{"name": "registry-credentials"}],
        "autoscaling": {"enabled": False},
        "ingress": {"enabled": True, "className": "nginx",
                    "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "8m"},
                    "tls": [{"hosts": ["iris-logistic.local"], "secretName": "iris-tls"}]},
        "settings": [{"name": "MODE", "value": "on"}, {"name": "THREADS", "value": "4"}],
        "terminationGracePeriodSeconds": 1000000,
    },
    "sklearn-classifier": {
        "config": {"modelType": "joblib", "job": "regression", "model": "modèle <v2> & co.joblib", "inputSize": 8},
        "service": {"type": "NodePort", "port": 8080},
        "autoscaling": {"maxReplicas": 7, "targetCPUUtilizationPercentage": 65},
    },
}
"""Values a user gives ``helm install --values``: replicas, image, ingress, settings, a large integer, an
estimator config with characters JSON encoders treat differently."""


def export_charts(tmp_path: Path) -> Path:
    """Three exported deployments: an EDI kernel with custom args and settings, an estimator, and a long timeout
    (a termination grace of 10^6 s, an integer Helm would print as 1e+06 without ``int``)."""
    deployments = [
        exported(tmp_path, "iris-logistic", "iris", custom_arg_names=("CPD_API_KEY",), settings={"THREADS": "2"}),
        exported(tmp_path, "sklearn-classifier", "sklearn"),
        exported(tmp_path, "iris-batch", "iris", configs={"task_execution_timeout": 999990, "kernel_max": 3}),
    ]
    KubernetesTarget().export(deployments, tmp_path / "out")
    return tmp_path / "out"


def helm_rendered(chart_dir: Path, values: dict[str, Any] | None = None) -> tuple[dict[str, list[dict]], str]:
    """``helm template`` offline: each manifest template's documents (templates rendering none left out) and
    NOTES.txt."""
    with helm.Chart.load(chart_dir) as chart:
        rendered = chart.render(values, name=chart.name, namespace="default")
    by_file = {Path(path).name: text for path, text in rendered.items()}
    manifests = {name: documents(text) for name, text in by_file.items() if name != "NOTES.txt"}
    return {name: docs for name, docs in manifests.items() if docs}, by_file["NOTES.txt"]


def canonical_files(manifests: dict[str, list[dict]]) -> dict[str, list[str]]:
    """Each file's documents as sorted canonical JSON: equal mappings mean the same documents in any order."""
    return {name: sorted(json.dumps(doc, sort_keys=True) for doc in docs) for name, docs in manifests.items()}


def our_notes(chart_dir: Path, values: dict[str, Any]) -> str:
    """NOTES.txt as our renderer renders it."""
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    context = {"Values": values, "Chart": {"Name": chart["name"], "Version": chart["version"],
                                           "AppVersion": chart["appVersion"]}}
    return render(TEMPLATES["NOTES.txt"], context)


def overridden(values: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of user values over the chart's: maps merge key by key, anything else is replaced."""
    merged = dict(values)
    for key, value in overrides.items():
        both_maps = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = overridden(merged[key], value) if both_maps else value
    return merged


def lint_problems(chart_dir: Path, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """``helm lint --strict`` for the Kubernetes version the manifests are validated against: warnings and errors."""
    report = helm.lint(chart_dir, values, strict=True, kube_version=f"v{KUBERNETES_VERSION}")
    assert report["total_charts_linted"] == 1, report
    return [message for message in report["messages"] if message["severity"] >= WARNING] + report["errors"]


def test_helm_lints_every_exported_chart_strictly(tmp_path):
    out = export_charts(tmp_path)
    for name in ("iris-logistic", "sklearn-classifier", "iris-batch"):
        assert lint_problems(out / name / "chart") == [], name
    for name, overrides in OVERRIDES.items():
        assert lint_problems(out / name / "chart", overrides) == [], name


def test_strict_lint_fails_a_chart_helm_finds_wrong(tmp_path):
    """The lint can fail: a chart name that is no Kubernetes name makes every resource's name invalid."""
    out = export_charts(tmp_path)
    broken = shutil.copytree(out / "iris-logistic" / "chart", tmp_path / "broken")
    chart_yaml = broken / "Chart.yaml"
    chart_yaml.write_text(chart_yaml.read_text().replace("name: iris-logistic", "name: Iris_Logistic"))
    assert any("Iris_Logistic" in str(problem) for problem in lint_problems(broken))


def test_helm_renders_the_exported_values_as_the_manifests_we_wrote(tmp_path):
    out = export_charts(tmp_path)
    for name in ("iris-logistic", "sklearn-classifier", "iris-batch"):
        folder = out / name
        ours = {path.name: documents(path.read_text()) for path in sorted((folder / "manifests").glob("*.yaml"))}
        manifests, notes = helm_rendered(folder / "chart")
        assert canonical_files(manifests) == canonical_files(ours), f"{name}: helm template = manifests/"
        values = yaml.safe_load((folder / "chart" / "values.yaml").read_text())
        assert notes == our_notes(folder / "chart", values), name
    grace = [doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
             for doc in load_all(out / "iris-batch" / "manifests") if doc["kind"] == "Deployment"]
    assert grace == [1000000]


def test_helm_and_our_renderer_agree_on_overridden_values(tmp_path):
    out = export_charts(tmp_path)
    rendered = {}
    for name, overrides in OVERRIDES.items():
        chart_dir = out / name / "chart"
        chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
        values = overridden(yaml.safe_load((chart_dir / "values.yaml").read_text()), overrides)
        ours = {file: docs for file, docs in render_manifests(chart, values).items() if docs}
        manifests, notes = helm_rendered(chart_dir, overrides)
        assert canonical_files(manifests) == canonical_files(ours), f"{name}: helm template -f = our renderer"
        assert notes == our_notes(chart_dir, values), name
        rendered[name] = {doc["kind"]: doc for docs in manifests.values() for doc in docs}
    iris, estimator = rendered["iris-logistic"], rendered["sklearn-classifier"]
    assert iris["Deployment"]["spec"]["replicas"] == 4 and "HorizontalPodAutoscaler" not in iris
    assert iris["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "registry.example.com/mlops/iris-logistic:v2")
    assert iris["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 1000000
    assert iris["Ingress"]["spec"]["ingressClassName"] == "nginx"
    assert yaml.safe_load(estimator["ConfigMap"]["data"]["config.yaml"]) == OVERRIDES["sklearn-classifier"]["config"]
    assert estimator["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] == 7
