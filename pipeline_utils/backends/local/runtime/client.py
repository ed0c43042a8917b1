"""The runtime client: start the daemon of one state directory on demand and drive its deployments.

The daemon serves every deployment at ``http://127.0.0.1:<port>/dlim/v1/inference/<name>``. A
:class:`RuntimeClient` holds its state directory and port, so clients of different state directories work
side by side in one process; :meth:`RuntimeClient.from_environment` reads them from ``$MLOPS_HOME`` and
``$MLOPS_RUNTIME_PORT`` (default 8780). The control plane (create, start, stop, delete, profile, shutdown) is
reached only over the owner-only Unix socket ``runtime/control.sock``, never over TCP; custom-arg values travel
to the daemon there, in the request body, and are never stored. Scripts and tests may call the methods as
functions of this module (``client.create(...)``): each acts on :func:`default_client`, built from this process's
environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from pipeline_utils.backends.local.runtime.httplimits import Limits
from pipeline_utils.backends.local.runtime.settings import (
    ALREADY_RUNNING,
    DEFAULT_PORT,
    ENDPOINT_PREFIX,
    HOST,
    INFERENCE_PREFIX,
    PORT_ENV,
    configured_port,
    control_socket,
    daemon_environment,
    runtime_dir,
    socket_address,
)
from pipeline_utils.config.settings import mlops_home
from pipeline_utils.errors import NotReady, Unavailable, error_for_status

_STARTED: dict[int, subprocess.Popen] = {}
CONTROL_BASE_URL = "http://mlops-runtime"
_NOT_SERVING = ("failed", "stopped", "needs-custom-args")


def daemon_url(info: Mapping[str, Any]) -> str:
    """The base URL of the daemon described by ``info`` (from :meth:`RuntimeClient.daemon_info`)."""
    return f"http://{HOST}:{info['port']}"


class RuntimeClient:
    """Drives the runtime daemon of the state directory ``home``, started on demand on ``port``."""

    def __init__(self, home: Path, port: int) -> None:
        self.home = Path(home)
        self.port = int(port)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> RuntimeClient:
        """The client of ``$MLOPS_HOME`` on ``$MLOPS_RUNTIME_PORT`` (default 8780)."""
        return cls(mlops_home(environ), configured_port(environ))

    def _control(self, method: str, path: str, body: Any = None, timeout: float | None = 60.0) -> httpx.Response:
        """One request to the control plane, over the owner-only Unix socket (never over TCP)."""
        with socket_address(control_socket(self.home)) as address:
            transport = httpx.HTTPTransport(uds=address)
            with httpx.Client(transport=transport, base_url=CONTROL_BASE_URL, timeout=timeout) as http:
                return http.request(method, path, json=body)

    def daemon_info(self) -> dict[str, Any] | None:
        """The running daemon's pid and port for this state directory, or None when none answers."""
        path = runtime_dir(self.home) / "daemon.json"
        try:
            info = json.loads(path.read_text())
            response = self._control("GET", "/admin/health", timeout=2.0)
            if response.status_code == 200 and response.json().get("pid") == info["pid"]:
                return info
        except (OSError, ValueError, KeyError, httpx.HTTPError):
            return None
        return None

    def ensure_daemon(self, timeout: float = 15.0) -> str:
        """Start the daemon if none is running (detached, it outlives the caller); return its base URL."""
        info = self.daemon_info()
        if info is not None:
            return daemon_url(info)
        Limits.from_environment(os.environ)
        process, log = self._spawn_daemon()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.daemon_info()
            if info is not None:
                return daemon_url(info)
            if process.poll() not in (None, ALREADY_RUNNING) and self.daemon_info() is None:
                tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise Unavailable(f"the runtime daemon did not start: {tail[0]} (log: {log})")
            time.sleep(0.02)
        raise Unavailable(f"the runtime daemon did not answer within {timeout:.0f} s (log: {log})")

    def _spawn_daemon(self) -> tuple[subprocess.Popen, Path]:
        """Start the runtime's supervisor (which runs the daemon) on this client's state directory and port.

        It gets the allow-listed environment only (:func:`daemon_environment`); its output goes to daemon.log.
        """
        log = runtime_dir(self.home) / "daemon.log"
        env = {**daemon_environment(os.environ), "MLOPS_HOME": str(self.home), PORT_ENV: str(self.port)}
        command = [sys.executable, "-m", "pipeline_utils.backends.local.runtime.supervisor", "--port", str(self.port)]
        with log.open("ab") as out:
            process = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        _STARTED[process.pid] = process
        return process, log

    def shutdown_daemon(self, timeout: float = 15.0) -> bool:
        """Stop the runtime (daemon and supervisor); deployments keep their desired state for its next start."""
        info = self.daemon_info()
        if info is None:
            return False
        with contextlib.suppress(httpx.HTTPError, OSError):
            self._control("POST", "/admin/shutdown", timeout=5.0)
        pids = [info["pid"], info.get("supervisor")]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(pid and _alive(pid) for pid in pids):
                return True
            time.sleep(0.02)
        return False

    def deployment_url(self, name: str) -> str:
        """The inference URL of a deployment: ``http://127.0.0.1:<port>/dlim/v1/inference/<name>``."""
        return f"{self.ensure_daemon()}{INFERENCE_PREFIX}{name}"

    def _call(self, method: str, path: str, body: Any = None, timeout: float | None = 60.0) -> Any:
        self.ensure_daemon()
        try:
            response = self._control(method, path, body, timeout)
        except (httpx.HTTPError, OSError) as exc:
            raise Unavailable(f"runtime daemon unreachable at {control_socket(self.home)}: {exc}") from None
        if response.status_code >= 400:
            try:
                message = response.json().get("error") or response.text
            except ValueError:
                message = response.text
            raise error_for_status(response.status_code, message)
        return response.json()

    def create(
        self,
        name: str,
        folder: str | Path,
        *,
        kernel_filename: str = "kernel.py",
        profile: dict[str, Any] | None = None,
        custom_args: dict[str, str] | None = None,
        settings: dict[str, str] | None = None,
        flavour: str | None = None,
    ) -> dict[str, Any]:
        """Register a deployment from a folder (copied into the runtime); it starts stopped.

        ``custom_args`` are secrets (kept in memory only); ``settings`` are plain kernel values, stored and shown.
        """
        body = {
            "name": name,
            "folder": str(Path(folder).resolve()),
            "kernel_filename": kernel_filename,
            "profile": profile or {},
            "custom_args": custom_args or {},
            "settings": settings or {},
            "flavour": flavour,
        }
        return self._call("POST", "/admin/deployments", body)

    def update(
        self, name: str, folder: str | Path, *, kernel_filename: str = "kernel.py", timeout: float = 120.0
    ) -> dict[str, Any]:
        """Serve a new folder under an existing deployment; its kernels restart on it, rolled back if they fail."""
        body = {"folder": str(Path(folder).resolve()), "kernel_filename": kernel_filename, "timeout": timeout}
        return self._call("POST", f"/admin/deployments/{name}/update", body, timeout=None)

    def start(self, name: str, custom_args: dict[str, str] | None = None) -> dict[str, Any]:
        """Start serving; pass ``custom_args`` again after a daemon restart (values are kept in memory only)."""
        body: dict[str, Any] = {} if custom_args is None else {"custom_args": custom_args}
        return self._call("POST", f"/admin/deployments/{name}/start", body)

    def stop(self, name: str, drain_timeout: float | None = None) -> dict[str, Any]:
        """Stop serving: queued and in-flight requests finish first, then the kernels stop."""
        return self._call("POST", f"/admin/deployments/{name}/stop", {"drain_timeout": drain_timeout}, timeout=None)

    def delete(self, name: str) -> dict[str, Any]:
        """Stop a deployment and remove it with its copied folder and kernel logs."""
        return self._call("DELETE", f"/admin/deployments/{name}", timeout=None)

    def list_deployments(self) -> list[dict[str, Any]]:
        """One row per deployment: name, status, kernels running/min/max, URL, requests served, errors."""
        return self._call("GET", "/admin/deployments")

    def get(self, name: str) -> dict[str, Any]:
        """Everything about one deployment: its row, profile, kernels, folder and enforcement notes."""
        return self._call("GET", f"/admin/deployments/{name}")

    def get_profile(self, name: str) -> dict[str, Any]:
        """The deployment profile (policy, resource and limits sections)."""
        return self._call("GET", f"/admin/deployments/{name}/profile")

    def update_profile(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change profile settings live (``policy.kernel_max``, or bare keys like ``kernel_max``)."""
        return self._call("PATCH", f"/admin/deployments/{name}/profile", changes)

    def wait_ready(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the deployment answers requests without waiting for a kernel; NotReady on failure or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            row = self.get(name)
            if row["status"] == "ready":
                return row
            if row["status"] in _NOT_SERVING:
                detail = f": {row['message']}" if row.get("message") else ""
                raise NotReady(f"deployment {name} is {row['status']}{detail}")
            if time.monotonic() > deadline:
                raise NotReady(f"deployment {name} not ready after {timeout:.0f} s (status {row['status']})")
            time.sleep(0.02)

    def invoke(self, name: str, payload: Any, timeout: float = 300.0) -> httpx.Response:
        """POST a JSON payload to the deployment's inference URL and return the response."""
        return httpx.post(self.deployment_url(name), json=payload, timeout=timeout)

    # -- endpoints -------------------------------------------------------------------------------

    def endpoint_url(self, name: str) -> str:
        """The inference URL of an endpoint: ``http://127.0.0.1:<port>/endpoints/<name>``."""
        return f"{self.ensure_daemon()}{ENDPOINT_PREFIX}{name}"

    def create_endpoint(self, name: str, deployments: list[str] | None = None) -> dict[str, Any]:
        """Create an endpoint with ``deployments`` attached at 0 % (it answers 503 until a split is set)."""
        return self._call("POST", "/admin/endpoints", {"name": name, "deployments": list(deployments or [])})

    def list_endpoints(self) -> list[dict[str, Any]]:
        """Every endpoint with its URL, attached deployments, traffic and mirror maps, revision and statuses."""
        return self._call("GET", "/admin/endpoints")

    def get_endpoint(self, name: str) -> dict[str, Any]:
        """One endpoint, as :meth:`list_endpoints` shows it; NotFound when unknown."""
        return self._call("GET", f"/admin/endpoints/{name}")

    def delete_endpoint(self, name: str) -> dict[str, Any]:
        """Remove an endpoint (its deployments stay)."""
        return self._call("DELETE", f"/admin/endpoints/{name}")

    def set_traffic(
        self,
        name: str,
        traffic: dict[str, int],
        mirror: dict[str, int] | None = None,
        *,
        expected_revision: int | None = None,
    ) -> dict[str, Any]:
        """Replace the endpoint's split whole: integer weights summing to 100, an optional mirror (atomic).

        With ``expected_revision``, only while the endpoint is at that revision (Conflict otherwise).
        """
        body = {"traffic": traffic, "mirror": mirror or {}, "expected_revision": expected_revision}
        return self._call("PUT", f"/admin/endpoints/{name}/traffic", body)

    def attach(self, name: str, deployment: str) -> dict[str, Any]:
        """Attach a deployment to the endpoint at 0 % (reachable with a pin header)."""
        return self._call("POST", f"/admin/endpoints/{name}/attach", {"deployment": deployment})

    def detach(self, name: str, deployment: str) -> dict[str, Any]:
        """Detach a deployment that takes no live or mirrored traffic on the endpoint."""
        return self._call("POST", f"/admin/endpoints/{name}/detach", {"deployment": deployment})


def default_client() -> RuntimeClient:
    """The client configured by this process's environment (read anew on each call)."""
    return RuntimeClient.from_environment(os.environ)


# The methods scripts (bench/) and tests still call as functions of this module, ``client.<name>(...)``.
_MODULE_FUNCTIONS = frozenset(
    {
        "create",
        "daemon_info",
        "deployment_url",
        "ensure_daemon",
        "get",
        "get_profile",
        "invoke",
        "list_deployments",
        "shutdown_daemon",
        "start",
        "stop",
        "update_profile",
        "wait_ready",
    }
)

__all__ = ["DEFAULT_PORT", "RuntimeClient", "daemon_url", "default_client", *sorted(_MODULE_FUNCTIONS)]


def __getattr__(name: str) -> Any:
    """``client.create(...)`` and the other names of ``_MODULE_FUNCTIONS``: that method of :func:`default_client`."""
    if name in _MODULE_FUNCTIONS:
        return getattr(default_client(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _alive(pid: int) -> bool:
    if pid in _STARTED:
        return _STARTED[pid].poll() is None
    import psutil

    return psutil.pid_exists(pid)
