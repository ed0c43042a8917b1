"""The deploy target interface, in the style of MLflow's deployments plugin ``BaseDeploymentClient``.

The local runtime implements it (:mod:`pipeline_utils.backends.local.deploy`); WMLA EDI, Kubernetes and
other targets implement the same methods so the A2 flow does not change with the target.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any


class DeploymentTarget(abc.ABC):
    """Where deployments run: create from a submission folder, start/stop, inspect, tune, delete."""

    name: str = "base"

    @abc.abstractmethod
    def create(
        self,
        name: str,
        folder: str | Path,
        resource_configs: dict[str, Any] | None = None,
        custom_args: dict[str, str] | None = None,
        *,
        kernel_filename: str = "kernel.py",
    ) -> dict[str, Any]:
        """Create deployment ``name`` from a submission folder, with its profile and secret custom args."""

    @abc.abstractmethod
    def start(self, name: str, custom_args: dict[str, str] | None = None) -> dict[str, Any]:
        """Start serving."""

    @abc.abstractmethod
    def stop(self, name: str) -> dict[str, Any]:
        """Stop serving once in-flight requests have finished."""

    @abc.abstractmethod
    def delete(self, name: str) -> None:
        """Remove the deployment."""

    @abc.abstractmethod
    def list(self) -> list[dict[str, Any]]:
        """One row per deployment: name, status, kernels, URL, requests served, errors."""

    @abc.abstractmethod
    def get(self, name: str) -> dict[str, Any]:
        """Everything the target knows about one deployment."""

    @abc.abstractmethod
    def get_profile(self, name: str) -> dict[str, Any]:
        """The deployment profile (kernel policy and resources)."""

    @abc.abstractmethod
    def update_profile(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change profile settings; returns the new profile."""

    @abc.abstractmethod
    def url(self, name: str) -> str:
        """The inference URL of the deployment."""

    @abc.abstractmethod
    def wait_ready(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """Block until the deployment answers requests; raise PipelineError on failure or timeout."""

    @abc.abstractmethod
    def predict(self, name: str, payload: Any, timeout: float = 300.0) -> tuple[int, Any]:
        """Send one JSON request; returns (HTTP status, parsed JSON or text)."""

    def prepare(self) -> None:  # noqa: B027 - optional hook: most targets need no preparation
        """Get the target ready to take deployments (e.g. start a local server); called early, may be a no-op."""

    def exists(self, name: str) -> bool:
        """Whether a deployment of that name exists."""
        return any(row["name"] == name for row in self.list())
