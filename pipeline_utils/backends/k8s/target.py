"""The ``k8s`` deploy target: exports deployments as Helm charts, images and KServe InferenceServices.

It serves nothing itself (no cluster is contacted): :meth:`KubernetesTarget.export` writes, per deployment,
``<name>/chart/`` (Helm), ``<name>/manifests/`` (the chart rendered with its values), ``<name>/image/`` (the
Dockerfile's build context) and ``<name>/kserve/inferenceservice.yaml``; with an endpoint's split,
``endpoints/<endpoint>/istio/`` holds its VirtualService (any split) and ``endpoints/<endpoint>/kserve/`` its canary
rollout (when KServe can express the split; a one-line note says when it cannot). The methods that would act on a
cluster say how to apply the export instead. See README.md beside this module.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline_utils.backends.k8s import chart, container, istio, kserve, mapping
from pipeline_utils.deploy.base import (
    DeployAssets,
    ExportedDeployment,
    ExportOnlyTarget,
    TrafficSplit,
    export_folder,
    free_export_path,
)
from pipeline_utils.deploy.flavours import detect
from pipeline_utils.deploy.submission import edi_submission
from pipeline_utils.deploy.traffic import PIN_HEADERS, SERVED_HEADERS
from pipeline_utils.errors import BadInput
from pipeline_utils.fsutil import atomic_write_text

log = logging.getLogger(__name__)
NOTES_FILE = "NOTES.txt"


class Prepared:
    """One deployment checked and unpacked: its resource configs, served folder, flavour and estimator config."""

    def __init__(self, deployment: ExportedDeployment, work: Path) -> None:
        self.deployment = deployment
        self.configs = mapping.configs_of(deployment)
        self.folder = edi_submission(deployment.name, deployment.assets, work / deployment.name,
                                     kernel_filename=deployment.kernel_filename)
        self.flavour, self.entry = detect(self.folder, deployment.kernel_filename)
        self.estimator_config = estimator_config(self.folder / self.entry) if self.flavour == "sklearn" else {}


def estimator_config(path: Path) -> dict[str, Any]:
    """An estimator's config (seed 002's modelType, job, model, inputSize), checked as the runtime checks it."""
    from pipeline_utils.kernels.flavours.estimator import load_config

    try:
        return load_config(path)
    except (ValueError, OSError) as exc:
        raise BadInput(str(exc), field=path.name) from None


class KubernetesTarget(ExportOnlyTarget):
    """Writes what Kubernetes (Helm, kubectl, KServe) deploys from; acts on no cluster."""

    name = "k8s"
    apply_with = "`helm install NAME DIR/NAME/chart` (or `kubectl apply -f DIR/NAME/manifests`)"

    def export(
        self, deployments: Sequence[ExportedDeployment], out: Path, split: TrafficSplit | None = None
    ) -> list[Path]:
        """Write each deployment's chart, manifests, image build context and InferenceService (and the split's
        VirtualService and, when KServe can express it, canary rollout) into ``out``; everything is checked first
        and nothing is left behind on failure. With a split, the charts serve under the endpoint's name."""
        out = free_export_path(out)
        names = [deployment.name for deployment in deployments]
        if not names:
            raise BadInput("no deployment to export", field="--name")
        if len(set(names)) != len(names):
            raise BadInput(f"deployments named more than once: {', '.join(sorted(names))}", field="--name")
        with tempfile.TemporaryDirectory(prefix="mlops-k8s-") as work:
            prepared = [Prepared(deployment, Path(work)) for deployment in deployments]
            traffic, mirror = istio.checked_split(split, set(names)) if split is not None else ({}, {})
            served_as = split.endpoint if split is not None else None
            with export_folder(out) as staging:
                values = {item.deployment.name: self._write_deployment(staging, item, served_as) for item in prepared}
                if split is not None:
                    self._write_split(staging, split.endpoint, traffic, mirror, values)
                readable_by_all(staging)
        return sorted(path for path in out.rglob("*") if path.is_file())

    def _write_deployment(self, staging: Path, item: Prepared, served_as: str | None) -> dict[str, Any]:
        deployment = item.deployment
        folder = staging / deployment.name
        image = folder / "image"
        image.mkdir(parents=True)
        tag = container.write_image(image, deployment.name, item.folder, deployment.kernel_filename)
        values = mapping.chart_values(deployment, item.configs, item.entry, item.estimator_config, tag)
        chart_values = mapping.served_as(values, served_as) if served_as else values
        chart.write_chart(folder, chart.chart_metadata(deployment), chart_values)
        service = kserve.inference_service(deployment.name, values, profile_json(values))
        (folder / "kserve").mkdir()
        atomic_write_text(folder / "kserve" / "inferenceservice.yaml", chart.dump(service))
        return values

    def _write_split(
        self, staging: Path, endpoint: str, traffic: dict[str, int], mirror: dict[str, int],
        values: dict[str, dict[str, Any]],
    ) -> None:
        folder = staging / "endpoints" / endpoint
        (folder / "istio").mkdir(parents=True)
        ports = {name: item["service"]["port"] for name, item in values.items()}
        for filename, doc in istio.endpoint_files(endpoint, traffic, mirror, ports, mapping.SERVICE_PORT).items():
            atomic_write_text(folder / "istio" / filename, chart.dump(doc))
        refusal = kserve.canary_refusal(traffic, mirror)
        services: dict[str, dict[str, Any]] = {}
        if refusal is None:
            (folder / "kserve").mkdir()
            profiles = {name: profile_json(item) for name, item in values.items()}
            services = kserve.endpoint_services(endpoint, traffic, values, profiles)
            for filename, service in services.items():
                atomic_write_text(folder / "kserve" / filename, chart.dump(service))
        else:
            log.warning("%s: no KServe canary written, the split is in istio/ only: %s", endpoint, refusal)
        atomic_write_text(folder / NOTES_FILE, endpoint_notes(endpoint, traffic, mirror, list(services), refusal))

    def package(self, entry: dict[str, Any], assets: DeployAssets, *, kernel_filename: str = "kernel.py") -> Path:
        """One deployment's export folder (chart/, manifests/, image/, kserve/) in a new temporary folder."""
        name = entry["wmla_deployment"]["deployment_name"]
        out = Path(tempfile.mkdtemp(prefix=f"mlops-k8s-{name}-")) / "export"
        self.export([ExportedDeployment(name, entry, assets, kernel_filename)], out)
        return out / name


def readable_by_all(folder: Path) -> None:
    """Files 0644 and folders 0755: an image's user (not root) reads what COPY puts in it; nothing here is secret."""
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def profile_json(values: dict[str, Any]) -> str:
    """The in-pod profile as the entrypoint reads it from ``$MLOPS_DEPLOYMENT_PROFILE`` (compact, sorted)."""
    return json.dumps(values["profile"], sort_keys=True, separators=(",", ":"))


def endpoint_notes(
    endpoint: str, traffic: dict[str, int], mirror: dict[str, int], kserve_files: list[str], refusal: str | None
) -> str:
    """``endpoints/<endpoint>/NOTES.txt``: the split, which folders express it (why not kserve/) and how to apply
    each."""
    shown = ", ".join(f"{name}={weight}" for name, weight in sorted(traffic.items()))
    mirrored = ", ".join(f"{name}={percent} %" for name, percent in mirror.items()) or "none"
    local_path, pods_path = istio.endpoint_paths(endpoint)
    lines = [
        f"Endpoint {endpoint}: traffic {shown}; mirror {mirrored}.",
        f"Each deployment's chart here serves under the endpoint's name: its pods answer POST {pods_path}.",
        "istio/: helm install each deployment's chart, then kubectl apply -f istio/ (one namespace, Istio sidecars"
        f" injected). Clients in the mesh POST to http://{endpoint}{local_path} (or {pods_path}); the header"
        f" {PIN_HEADERS[0]} (or {PIN_HEADERS[1]}) pins a request to one deployment, and {SERVED_HEADERS[0]} in"
        " each answer names the deployment that served it.",
    ]
    if kserve_files:
        then = f", wait until it is ready, then apply {kserve_files[1]}" if len(kserve_files) > 1 else ""
        lines.append("kserve/: the same split as a KServe canary rollout, instead of the charts and istio/: kubectl"
                     f" apply -f {kserve_files[0]}{then}.")
    if refusal is not None:
        lines.append(f"kserve/: not written: {refusal}.")
    return "\n".join(lines) + "\n"
