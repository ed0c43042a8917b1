"""The runtime client the CLI and notebooks call: start the daemon on demand and drive deployments.

The daemon serves every deployment at ``http://127.0.0.1:<port>/dlim/v1/inference/<name>``;
the port is ``$MLOPS_RUNTIME_PORT`` (default 8780). Custom-arg values travel to the daemon
in the request body over loopback and are never stored.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from pipeline_utils.backends.local.runtime.settings import (
    ALREADY_RUNNING,
    DEFAULT_PORT,
    HOST,
    INFERENCE_PREFIX,
    configured_port,
    runtime_dir,
)
from pipeline_utils.config.settings import mlops_home
from pipeline_utils.errors import PipelineError, Unavailable, error_for_status

_STARTED: dict[int, subprocess.Popen] = {}

__all__ = [
    "DEFAULT_PORT",
    "base_url",
    "create",
    "daemon_info",
    "delete",
    "deployment_url",
    "ensure_daemon",
    "get",
    "get_profile",
    "invoke",
    "list_deployments",
    "shutdown_daemon",
    "start",
    "stop",
    "update",
    "update_profile",
    "wait_ready",
]


def daemon_info() -> dict[str, Any] | None:
    """The running daemon's pid and port for this MLOPS_HOME, or None when none answers."""
    path = runtime_dir() / "daemon.json"
    try:
        info = json.loads(path.read_text())
        response = httpx.get(f"http://{HOST}:{info['port']}/admin/health", timeout=2.0)
        if response.status_code == 200 and response.json().get("pid") == info["pid"]:
            return info
    except (OSError, ValueError, KeyError, httpx.HTTPError):
        return None
    return None


def ensure_daemon(timeout: float = 15.0) -> str:
    """Start the runtime daemon if none is running (detached, it outlives the caller); return its base URL."""
    info = daemon_info()
    if info is not None:
        return f"http://{HOST}:{info['port']}"
    log = runtime_dir() / "daemon.log"
    env = {
        **os.environ,
        "MLOPS_HOME": str(mlops_home()),
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline_utils.backends.local.runtime.daemon", "--port", str(configured_port())],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    _STARTED[process.pid] = process
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = daemon_info()
        if info is not None:
            return f"http://{HOST}:{info['port']}"
        if process.poll() not in (None, ALREADY_RUNNING) and daemon_info() is None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise PipelineError(f"the runtime daemon did not start: {tail[0]} (log: {log})")
        time.sleep(0.02)
    raise PipelineError(f"the runtime daemon did not answer within {timeout:.0f} s (log: {log})")


def base_url() -> str:
    """The base URL of the running daemon (starting it if needed)."""
    return ensure_daemon()


def deployment_url(name: str) -> str:
    """The inference URL of a deployment: ``http://127.0.0.1:<port>/dlim/v1/inference/<name>``."""
    return f"{base_url()}{INFERENCE_PREFIX}{name}"


def _call(method: str, path: str, body: Any = None, timeout: float = 60.0) -> Any:
    url = f"{ensure_daemon()}{path}"
    try:
        response = httpx.request(method, url, json=body, timeout=timeout)
    except httpx.HTTPError as exc:
        raise Unavailable(f"runtime daemon unreachable at {url}: {exc}") from None
    if response.status_code >= 400:
        try:
            message = response.json().get("error") or response.text
        except ValueError:
            message = response.text
        raise error_for_status(response.status_code, message)
    return response.json()


def create(
    name: str,
    folder: str | Path,
    *,
    kernel_filename: str = "kernel.py",
    profile: dict[str, Any] | None = None,
    custom_args: dict[str, str] | None = None,
    flavour: str | None = None,
) -> dict[str, Any]:
    """Register a deployment from a folder (copied into the runtime); it starts stopped."""
    body = {
        "name": name,
        "folder": str(Path(folder).resolve()),
        "kernel_filename": kernel_filename,
        "profile": profile or {},
        "custom_args": custom_args or {},
        "flavour": flavour,
    }
    return _call("POST", "/admin/deployments", body)


def update(name: str, folder: str | Path, *, kernel_filename: str = "kernel.py", timeout: float = 120.0) -> dict:
    """Serve a new folder under an existing deployment; its kernels restart on it, and it rolls back if they fail."""
    body = {"folder": str(Path(folder).resolve()), "kernel_filename": kernel_filename, "timeout": timeout}
    return _call("POST", f"/admin/deployments/{name}/update", body, timeout=None)


def start(name: str, custom_args: dict[str, str] | None = None) -> dict[str, Any]:
    """Start serving; pass ``custom_args`` again after a daemon restart (values are kept in memory only)."""
    body: dict[str, Any] = {} if custom_args is None else {"custom_args": custom_args}
    return _call("POST", f"/admin/deployments/{name}/start", body)


def stop(name: str, drain_timeout: float | None = None) -> dict[str, Any]:
    """Stop serving: queued and in-flight requests finish first, then the kernels stop."""
    return _call("POST", f"/admin/deployments/{name}/stop", {"drain_timeout": drain_timeout}, timeout=None)


def delete(name: str) -> dict[str, Any]:
    """Stop a deployment and remove it with its copied folder."""
    return _call("DELETE", f"/admin/deployments/{name}", timeout=None)


def list_deployments() -> list[dict[str, Any]]:
    """One row per deployment: name, status, kernels running/min/max, URL, requests served, errors."""
    return _call("GET", "/admin/deployments")


def get(name: str) -> dict[str, Any]:
    """Everything about one deployment: its row, profile, kernels, folder and enforcement notes."""
    return _call("GET", f"/admin/deployments/{name}")


def get_profile(name: str) -> dict[str, Any]:
    """The deployment profile (policy, resource and limits sections)."""
    return _call("GET", f"/admin/deployments/{name}/profile")


def update_profile(name: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Change profile settings live (``policy.kernel_max``, or bare keys like ``kernel_max``)."""
    return _call("PATCH", f"/admin/deployments/{name}/profile", changes)


def wait_ready(name: str, timeout: float = 60.0) -> dict[str, Any]:
    """Wait until the deployment answers requests without waiting for a kernel; fail fast on failure."""
    deadline = time.monotonic() + timeout
    while True:
        row = get(name)
        if row["status"] == "ready":
            return row
        if row["status"] in ("failed", "stopped", "needs-custom-args"):
            detail = f": {row['message']}" if row.get("message") else ""
            raise PipelineError(f"deployment {name} is {row['status']}{detail}")
        if time.monotonic() > deadline:
            raise PipelineError(f"deployment {name} not ready after {timeout:.0f} s (status {row['status']})")
        time.sleep(0.02)


def invoke(name: str, payload: Any, timeout: float = 300.0) -> httpx.Response:
    """POST a JSON payload to the deployment's inference URL and return the response."""
    return httpx.post(deployment_url(name), json=payload, timeout=timeout)


def shutdown_daemon(timeout: float = 15.0) -> bool:
    """Stop the daemon (deployments keep their desired state and come back on the next start)."""
    info = daemon_info()
    if info is None:
        return False
    with contextlib.suppress(httpx.HTTPError):
        httpx.post(f"http://{HOST}:{info['port']}/admin/shutdown", timeout=5.0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(info["pid"]):
            return True
        time.sleep(0.02)
    return False


def _alive(pid: int) -> bool:
    if pid in _STARTED:
        return _STARTED[pid].poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
