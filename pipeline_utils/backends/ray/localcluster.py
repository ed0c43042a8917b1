"""A single-node Ray cluster on this machine, for the end-to-end test and the benchmark: ``ray start --head
--block`` with its dashboard on free loopback ports, its own temp dir and HOME, in a process group of its own that
is ended by its id (``ray stop`` would end every cluster on the machine)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from pipeline_utils.netutil import free_port

PORT_OPTIONS = ("port", "dashboard-port", "node-manager-port", "object-manager-port", "ray-client-server-port",
                "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
                "metrics-export-port")




STOP_GRACE_S = 5.0
"""Seconds between SIGTERM and SIGKILL: ``ray start --block`` keeps part of the cluster up about 30 s after SIGTERM,
and a cluster this module starts is disposable (its files live in its own temporary folder)."""


def _stop(proc: subprocess.Popen) -> None:
    """End the cluster's process group: SIGTERM, then SIGKILL after :data:`STOP_GRACE_S`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def single_node_cluster(work: Path, num_cpus: int = 2, timeout: float = 120.0) -> Iterator[dict[str, str]]:
    """Start a cluster whose files go under ``work``; yield the environment the ray target reads (dashboard and
    Serve URLs, ``MLOPS_HOME`` and ``HOME`` under ``work``) plus ``startup_s``, the seconds until the dashboard's
    REST API answered. The cluster is stopped on exit, whatever happened."""
    from pipeline_utils.backends.ray.target import RayServeTarget
    from pipeline_utils.errors import Unavailable

    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    temp_dir = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    ports = {name: free_port() for name in PORT_OPTIONS}
    command = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", "--num-cpus", str(num_cpus),
               "--node-ip-address", "127.0.0.1", "--dashboard-host", "127.0.0.1", "--include-dashboard", "true",
               "--temp-dir", str(temp_dir), "--disable-usage-stats",
               *[arg for name, port in ports.items() for arg in (f"--{name}", str(port))]]
    env = {**os.environ, "HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    log_path = work / "ray-start.log"
    started = time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    environ = {"HOME": str(home), "MLOPS_HOME": str(work / "mlops-home"),
               "MLOPS_RAY_DASHBOARD_URL": f"http://127.0.0.1:{ports['dashboard-port']}",
               "MLOPS_RAY_SERVE_URL": f"http://127.0.0.1:{free_port()}"}
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                RayServeTarget.from_environment(environ).rest.serve_details()
                break
            except Unavailable:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"the Ray cluster did not start: {log_path.read_text()[-2000:]}") from None
                time.sleep(0.5)
        environ["startup_s"] = f"{time.perf_counter() - started:.1f}"
        yield environ
    finally:
        _stop(proc)
        shutil.rmtree(temp_dir, ignore_errors=True)
