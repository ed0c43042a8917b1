"""The ``k8s`` deploy target: exports deployments as Helm charts, images and KServe InferenceServices.

It serves nothing itself (no cluster is contacted): :meth:`KubernetesTarget.export` writes, per deployment,
``<name>/chart/`` (Helm), ``<name>/manifests/`` (the chart rendered with its values), ``<name>/image/`` (the
Dockerfile's build context) and ``<name>/kserve/inferenceservice.yaml``; with an endpoint's split,
``endpoints/<endpoint>/kserve/`` holds the canary rollout. The methods that would act on a cluster say how to
apply the export instead. See README.md beside this module.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline_utils.backends.k8s import chart, container, kserve, mapping
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
from pipeline_utils.errors import BadInput
from pipeline_utils.fsutil import atomic_write_text


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
        canary rollout) into ``out``; everything is checked first and nothing is left behind on failure."""
        out = free_export_path(out)
        names = [deployment.name for deployment in deployments]
        if not names:
            raise BadInput("no deployment to export", field="--name")
        if len(set(names)) != len(names):
            raise BadInput(f"deployments named more than once: {', '.join(sorted(names))}", field="--name")
        with tempfile.TemporaryDirectory(prefix="mlops-k8s-") as work:
            prepared = [Prepared(deployment, Path(work)) for deployment in deployments]
            if split is not None:
                kserve.live_pair(split, set(names))
            with export_folder(out) as staging:
                values = {item.deployment.name: self._write_deployment(staging, item) for item in prepared}
                if split is not None:
                    self._write_split(staging, split, values)
                readable_by_all(staging)
        return sorted(path for path in out.rglob("*") if path.is_file())

    def _write_deployment(self, staging: Path, item: Prepared) -> dict[str, Any]:
        deployment = item.deployment
        folder = staging / deployment.name
        image = folder / "image"
        image.mkdir(parents=True)
        tag = container.write_image(image, deployment.name, item.folder, deployment.kernel_filename)
        values = mapping.chart_values(deployment, item.configs, item.entry, item.estimator_config, tag)
        chart.write_chart(folder, chart.chart_metadata(deployment), values)
        service = kserve.inference_service(deployment.name, values, profile_json(values))
        (folder / "kserve").mkdir()
        atomic_write_text(folder / "kserve" / "inferenceservice.yaml", chart.dump(service))
        return values

    def _write_split(self, staging: Path, split: TrafficSplit, values: dict[str, dict[str, Any]]) -> None:
        folder = staging / "endpoints" / split.endpoint / "kserve"
        folder.mkdir(parents=True)
        profiles = {name: profile_json(item) for name, item in values.items()}
        for filename, service in kserve.endpoint_services(split, values, profiles).items():
            atomic_write_text(folder / filename, chart.dump(service))

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
