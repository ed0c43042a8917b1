"""The local deploy target: deployments served by the local runtime daemon, from WMLA EDI-style folders."""

from __future__ import annotations

import collections
import tempfile
from pathlib import Path
from typing import Any

from pipeline_utils.backends.local.runtime import client
from pipeline_utils.backends.local.runtime.settings import runtime_dir
from pipeline_utils.config.settings import mlops_home
from pipeline_utils.deploy.base import DeployAssets, DeploymentTarget
from pipeline_utils.deploy.submission import edi_submission


class LocalTarget(DeploymentTarget):
    """Runs deployments in the local runtime (started on demand, outlives the caller)."""

    name = "local"

    def create(
        self,
        name: str,
        folder: str | Path,
        resource_configs: dict[str, Any] | None = None,
        custom_args: dict[str, str] | None = None,
        *,
        kernel_filename: str = "kernel.py",
    ) -> dict[str, Any]:
        """Create the deployment; ``resource_configs`` are seed 000's flat keys (kernel_min, n_cpus, ...)."""
        configs = {k: v for k, v in (resource_configs or {}).items() if v is not None}
        return client.create(name, folder, kernel_filename=kernel_filename, profile=configs, custom_args=custom_args)

    def package(self, entry: dict[str, Any], assets: DeployAssets, *, kernel_filename: str = "kernel.py") -> Path:
        """An EDI submission folder under ``$MLOPS_HOME/deployments/submissions``: dependency, model/, model.json."""
        name = entry["wmla_deployment"]["deployment_name"]
        folder = mlops_home() / "deployments" / "submissions"
        folder.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=folder))
        return edi_submission(name, assets, work, kernel_filename=kernel_filename)

    def update(
        self, name: str, folder: str | Path, *, kernel_filename: str = "kernel.py", timeout: float = 120.0
    ) -> dict[str, Any]:
        """Replace the deployment's folder and restart its kernels on it; the runtime rolls back if they fail."""
        return client.update(name, folder, kernel_filename=kernel_filename, timeout=timeout)

    def logs(self, name: str, tail: int | None = None) -> list[str]:
        """The kernels' log files under ``$MLOPS_HOME/runtime/logs/<name>``, oldest file first, each line
        prefixed with its kernel (pod) name."""
        client.get(name)
        files = sorted((runtime_dir() / "logs" / name).glob("*.log"), key=lambda path: path.stat().st_mtime)
        lines: collections.deque[str] = collections.deque(maxlen=tail)
        for path in files:
            with path.open(errors="replace") as handle:
                lines.extend(f"{path.stem}: {line.rstrip()}" for line in handle)
        return list(lines)

    def prepare(self) -> None:
        """Start the runtime now, so its warm worker is ready by the time a deployment starts."""
        client.ensure_daemon()

    def start(self, name: str, custom_args: dict[str, str] | None = None) -> dict[str, Any]:
        """Start serving."""
        return client.start(name, custom_args)

    def stop(self, name: str) -> dict[str, Any]:
        """Stop serving once in-flight requests have finished."""
        return client.stop(name)

    def delete(self, name: str) -> None:
        """Remove the deployment and its copied folder."""
        client.delete(name)

    def list(self) -> list[dict[str, Any]]:
        """One row per deployment."""
        return client.list_deployments()

    def get(self, name: str) -> dict[str, Any]:
        """Status, profile, kernels and folder of one deployment."""
        return client.get(name)

    def get_profile(self, name: str) -> dict[str, Any]:
        """The deployment profile."""
        return client.get_profile(name)

    def update_profile(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change profile settings live."""
        return client.update_profile(name, changes)

    def url(self, name: str) -> str:
        """``http://127.0.0.1:<port>/dlim/v1/inference/<name>``."""
        return client.deployment_url(name)

    def wait_ready(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """Block until ready."""
        return client.wait_ready(name, timeout)

    def predict(self, name: str, payload: Any, timeout: float = 300.0) -> tuple[int, Any]:
        """Send one JSON request to the deployment."""
        response = client.invoke(name, payload, timeout)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text
