"""The deploy target interface, in the style of MLflow's deployments plugin ``BaseDeploymentClient``.

The local runtime implements it (:mod:`pipeline_utils.backends.local.deploy`); WMLA EDI, Ray Serve,
Kubernetes and Azure ML implement the same methods so the A2 flow does not change with the target.
The target owns its packaging: the flow hands it the downloaded, sha256-verified assets, and it
builds what it deploys from (a submission folder for EDI, a chart, an Azure folder). Methods raise
the typed errors of :mod:`pipeline_utils.errors`: NotFound for an unknown deployment, Conflict for a
name in use, BadInput for a folder or setting it cannot use, Unavailable when the target cannot be
reached or fails.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline_utils.backends import Configurable


@dataclass(frozen=True)
class DownloadedAsset:
    """One asset version downloaded from the space, its sha256 checked: the file and what it is."""

    asset_id: str
    name: str
    version: int
    kind: str | None
    path: Path

    def pin(self) -> dict[str, Any]:
        """Its id and version, as the metadata records them."""
        return {"asset_id": self.asset_id, "version": self.version}


@dataclass(frozen=True)
class DeployAssets:
    """What a deployment is built from: the model and the dependency (deployment code), pinned."""

    model: DownloadedAsset
    dependency: DownloadedAsset


class DeploymentTarget(Configurable, abc.ABC):
    """Where deployments run: package, create, start/stop, update, inspect, tune, read logs, delete."""

    name: str = "base"

    @abc.abstractmethod
    def package(self, entry: dict[str, Any], assets: DeployAssets, *, kernel_filename: str = "kernel.py") -> Path:
        """Build what this target deploys from (a local folder), from a metadata entry and its assets.

        ``entry`` has its deployment name filled in. Blocks while building; each call builds a new folder
        (nothing shared is changed). Raises BadInput when the assets do not make a deployment (e.g. no
        kernel file in the dependency).
        """

    @abc.abstractmethod
    def create(
        self,
        name: str,
        folder: str | Path,
        resource_configs: dict[str, Any] | None = None,
        custom_args: dict[str, str] | None = None,
        *,
        kernel_filename: str = "kernel.py",
        settings: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Create deployment ``name`` (stopped) from a :meth:`package` folder, its profile, custom args and settings.

        Both ``custom_args`` and ``settings`` reach each kernel as module-level names and environment variables
        (names are Python identifiers; one name given as both is BadInput). ``custom_args`` are secrets: never
        stored, so they are given again to :meth:`start` after the target restarts. ``settings`` are plain values
        (a volume name, a thread count): stored by the target, they survive restarts and :meth:`get` shows them
        under ``settings``. Returns once the deployment is registered. Not idempotent: raises Conflict when
        ``name`` exists.
        """

    @abc.abstractmethod
    def update(
        self, name: str, folder: str | Path, *, kernel_filename: str = "kernel.py", timeout: float = 120.0
    ) -> dict[str, Any]:
        """Move an existing deployment to a new :meth:`package` folder (a new model version) without deleting it.

        Its name, URL, profile and custom args stay. A started deployment restarts its kernels on the new
        folder; the call blocks until they serve (at most ``timeout`` seconds) and, if they fail, puts the
        previous folder back and raises Unavailable. Raises NotFound for an unknown deployment.
        """

    @abc.abstractmethod
    def start(self, name: str, custom_args: dict[str, str] | None = None) -> dict[str, Any]:
        """Start serving; returns without waiting for readiness (see :meth:`wait_ready`). Idempotent."""

    @abc.abstractmethod
    def stop(self, name: str) -> dict[str, Any]:
        """Stop serving; blocks until in-flight requests have finished. Idempotent."""

    @abc.abstractmethod
    def delete(self, name: str) -> None:
        """Remove the deployment and what it was built from; NotFound when it does not exist."""

    @abc.abstractmethod
    def list(self) -> list[dict[str, Any]]:
        """One row per deployment: name, status, kernels, URL, requests served, errors. Read-only."""

    @abc.abstractmethod
    def get(self, name: str) -> dict[str, Any]:
        """Everything the target knows about one deployment. Read-only; NotFound when unknown."""

    @abc.abstractmethod
    def get_profile(self, name: str) -> dict[str, Any]:
        """The deployment profile (kernel policy and resources). Read-only."""

    @abc.abstractmethod
    def update_profile(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change profile settings (applied live where the target can); returns the new profile. Idempotent."""

    @abc.abstractmethod
    def url(self, name: str) -> str:
        """The inference URL of the deployment."""

    @abc.abstractmethod
    def wait_ready(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """Block until the deployment answers requests; raise on failure or timeout."""

    @abc.abstractmethod
    def predict(self, name: str, payload: Any, timeout: float = 300.0) -> tuple[int, Any]:
        """Send one JSON request; returns (HTTP status, parsed JSON or text). Blocks up to ``timeout``."""

    @abc.abstractmethod
    def logs(self, name: str, tail: int | None = None) -> list[str]:
        """The deployment's log lines (its kernels' output), oldest first; the last ``tail`` when given.

        Read-only; NotFound for an unknown deployment.
        """

    def prepare(self) -> None:  # noqa: B027 - optional hook: most targets need no preparation
        """Get the target ready to take deployments (e.g. start a local server); called early, may be a no-op."""

    def exists(self, name: str) -> bool:
        """Whether a deployment of that name exists."""
        return any(row["name"] == name for row in self.list())
