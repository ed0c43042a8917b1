"""The local deploy target: deployments served by the local runtime daemon, from WMLA EDI-style folders."""

from __future__ import annotations

import collections
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from pipeline_utils.backends.local.runtime.client import RuntimeClient
from pipeline_utils.backends.local.runtime.settings import configured_port, log_dir
from pipeline_utils.config.settings import mlops_home
from pipeline_utils.deploy.base import DeployAssets, DeploymentTarget
from pipeline_utils.deploy.submission import edi_submission
from pipeline_utils.deploy.traffic import PIN_HEADERS, SERVED_HEADERS


class LocalTarget(DeploymentTarget):
    """Runs deployments in the runtime of state directory ``home`` (started on demand on ``port``; it outlives us)."""

    name = "local"

    def __init__(self, home: Path, port: int) -> None:
        self.home = Path(home)
        self.client = RuntimeClient(self.home, port)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> LocalTarget:
        """The target of ``$MLOPS_HOME``'s runtime on ``$MLOPS_RUNTIME_PORT`` (default 8780)."""
        return cls(mlops_home(environ), configured_port(environ))

    def diagnose(self) -> str:
        """Whether the runtime daemon runs (it starts on demand) and on which port."""
        info = self.client.daemon_info()
        if info is None:
            return f"runtime not running (starts on demand on port {self.client.port})"
        return f"runtime pid {info['pid']} on port {info['port']}: {len(self.list())} deployments"

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
        """Create the deployment; ``resource_configs`` are seed 000's flat keys (kernel_min, n_cpus, ...).

        The runtime keeps ``custom_args`` in memory only and stores ``settings`` with the deployment.
        """
        configs = {k: v for k, v in (resource_configs or {}).items() if v is not None}
        return self.client.create(
            name, folder, kernel_filename=kernel_filename, profile=configs, custom_args=custom_args, settings=settings
        )

    def package(self, entry: dict[str, Any], assets: DeployAssets, *, kernel_filename: str = "kernel.py") -> Path:
        """An EDI submission folder under ``<home>/deployments/submissions``: dependency, model/, model.json."""
        name = entry["wmla_deployment"]["deployment_name"]
        folder = self.home / "deployments" / "submissions"
        folder.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=folder))
        return edi_submission(name, assets, work, kernel_filename=kernel_filename)

    def update(
        self, name: str, folder: str | Path, *, kernel_filename: str = "kernel.py", timeout: float = 120.0
    ) -> dict[str, Any]:
        """Replace the deployment's folder and restart its kernels on it; the runtime rolls back if they fail."""
        return self.client.update(name, folder, kernel_filename=kernel_filename, timeout=timeout)

    def logs(self, name: str, tail: int | None = None) -> list[str]:
        """The kernels' log files under ``<home>/runtime/logs/<name>``, oldest file first, each line prefixed
        with its kernel (pod) name."""
        self.client.get(name)
        files = sorted(log_dir(self.home, name).glob("*.log"), key=lambda path: path.stat().st_mtime)
        lines: collections.deque[str] = collections.deque(maxlen=tail)
        for path in files:
            with path.open(errors="replace") as handle:
                lines.extend(f"{path.stem}: {line.rstrip()}" for line in handle)
        return list(lines)

    def prepare(self) -> None:
        """Start the runtime now, so its warm worker is ready by the time a deployment starts."""
        self.client.ensure_daemon()

    def start(self, name: str, custom_args: dict[str, str] | None = None) -> dict[str, Any]:
        """Start serving."""
        return self.client.start(name, custom_args)

    def stop(self, name: str) -> dict[str, Any]:
        """Stop serving once in-flight requests have finished."""
        return self.client.stop(name)

    def delete(self, name: str) -> None:
        """Remove the deployment with its copied folder and its kernel logs."""
        self.client.delete(name)

    def list(self) -> list[dict[str, Any]]:
        """One row per deployment."""
        return self.client.list_deployments()

    def get(self, name: str) -> dict[str, Any]:
        """Status, profile, kernels and folder of one deployment."""
        return self.client.get(name)

    def get_profile(self, name: str) -> dict[str, Any]:
        """The deployment profile."""
        return self.client.get_profile(name)

    def update_profile(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change profile settings live."""
        return self.client.update_profile(name, changes)

    def url(self, name: str) -> str:
        """``http://127.0.0.1:<port>/dlim/v1/inference/<name>``."""
        return self.client.deployment_url(name)

    def wait_ready(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """Block until ready."""
        return self.client.wait_ready(name, timeout)

    def predict(self, name: str, payload: Any, timeout: float = 300.0) -> tuple[int, Any]:
        """Send one JSON request to the deployment."""
        response = self.client.invoke(name, payload, timeout)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text

    def create_endpoint(self, name: str, deployments: Sequence[str] = ()) -> dict[str, Any]:
        """Create the endpoint in the runtime, stored with its attached deployments."""
        return self.client.create_endpoint(name, list(deployments))

    def list_endpoints(self) -> list[dict[str, Any]]:
        """The runtime's endpoints."""
        return self.client.list_endpoints()

    def get_endpoint(self, name: str) -> dict[str, Any]:
        """One endpoint of the runtime."""
        return self.client.get_endpoint(name)

    def delete_endpoint(self, name: str) -> None:
        """Remove the endpoint from the runtime (its deployments stay)."""
        self.client.delete_endpoint(name)

    def set_traffic(
        self,
        endpoint: str,
        traffic: Mapping[str, int],
        mirror: Mapping[str, int] | None = None,
        *,
        expected_revision: int | None = None,
    ) -> dict[str, Any]:
        """Replace the split in the runtime, which checks the revision and every rule and stores it before routing
        by it."""
        return self.client.set_traffic(
            endpoint, dict(traffic), dict(mirror or {}), expected_revision=expected_revision
        )

    def attach(self, endpoint: str, deployment: str) -> dict[str, Any]:
        """Attach a deployment at 0 %."""
        return self.client.attach(endpoint, deployment)

    def detach(self, endpoint: str, deployment: str) -> dict[str, Any]:
        """Detach a deployment that takes no traffic there."""
        return self.client.detach(endpoint, deployment)

    def endpoint_url(self, name: str) -> str:
        """``http://127.0.0.1:<port>/endpoints/<name>``."""
        return self.client.endpoint_url(name)

    def predict_endpoint(
        self, endpoint: str, payload: Any, deployment: str | None = None, timeout: float = 300.0
    ) -> tuple[int, str | None, Any]:
        """POST to the endpoint's URL (with the project's pin header when ``deployment`` is given)."""
        headers = {PIN_HEADERS[0]: deployment} if deployment else {}
        response = httpx.post(self.endpoint_url(endpoint), json=payload, headers=headers, timeout=timeout)
        served = response.headers.get(SERVED_HEADERS[0])
        try:
            return response.status_code, served, response.json()
        except ValueError:
            return response.status_code, served, response.text
