"""Reliability under load: killed kernels, many connections, stop during load, daemon restarts."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from pipeline_utils.backends.local.runtime import client

from .loadgen import load

pytestmark = pytest.mark.slow
ROW = [0.25] * 20


def test_sigkill_kernel_during_load_every_request_answered(runtime: str, sklearn_folders: dict[str, Path]) -> None:
    client.create("kill", sklearn_folders["classification"], profile={"kernel_min": 2, "kernel_max": 2})
    client.start("kill")
    client.wait_ready("kill")
    _wait_kernels("kill", 2)
    victim = client.get("kill")["kernels"][0]
    killed = threading.Event()

    def progress(done: int) -> None:
        if done >= 500 and not killed.is_set():
            killed.set()
            os.kill(victim["pid"], signal.SIGKILL)

    answers = load(client.deployment_url("kill"), 2000, 16, lambda i: {"data": [ROW]}, progress)
    assert killed.is_set()
    assert len(answers) == 2000
    statuses = {status for status, _ in answers}
    assert statuses <= {200, 502}, statuses
    for status, body in answers:
        if status == 502:
            assert victim["pod"] in json.loads(body)["error"]
    assert sum(status == 200 for status, _ in answers) >= 1900
    pods = _wait_kernels("kill", 2)
    assert victim["pod"] not in pods
    assert client.invoke("kill", {"data": [ROW]}).status_code == 200


def test_64_concurrent_connections_no_errors(runtime: str, sklearn_folders: dict[str, Path]) -> None:
    client.create("many", sklearn_folders["classification"])
    client.start("many")
    client.wait_ready("many")
    answers = load(client.deployment_url("many"), 640, 64, lambda i: {"data": [ROW]})
    assert [status for status, _ in answers] == [200] * 640
    assert client.list_deployments()[0]["requests_served"] == 640


def test_stop_during_load_lets_in_flight_requests_finish(runtime: str, echo_kernel: Path) -> None:
    client.create("drain", echo_kernel, profile={"kernel_min": 2, "kernel_max": 2})
    client.start("drain")
    client.wait_ready("drain")
    _wait_kernels("drain", 2)
    url = client.deployment_url("drain")
    results: list[httpx.Response] = []

    def send() -> None:
        results.append(httpx.post(url, json={"sleep": 0.5}, timeout=30))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(0.25)
    row = client.stop("drain")
    for thread in threads:
        thread.join()
    assert [r.status_code for r in results] == [200] * 6
    assert row["status"] == "stopped" and row["kernels_running"] == 0
    refused = httpx.post(url, json={})
    assert refused.status_code == 503 and "stopped" in refused.json()["error"]
    client.start("drain")
    client.wait_ready("drain")
    assert httpx.post(url, json={}).status_code == 200


def test_daemon_restart_brings_started_deployments_back(runtime: str, echo_kernel: Path) -> None:
    client.create("plain", echo_kernel)
    client.create("withargs", echo_kernel, custom_args={"TOKEN": "abc"})
    client.create("idle", echo_kernel)
    for name in ("plain", "withargs"):
        client.start(name)
        client.wait_ready(name)
    old = client.daemon_info()
    kernel_pids = [k["pid"] for n in ("plain", "withargs") for k in client.get(n)["kernels"]]
    os.kill(old["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in kernel_pids):
        assert time.monotonic() < deadline, "kernels outlived their daemon"
        time.sleep(0.05)
    assert client.ensure_daemon() == runtime
    assert client.daemon_info()["pid"] != old["pid"]
    rows = {r["name"]: r for r in client.list_deployments()}
    assert rows["idle"]["status"] == "stopped"
    assert rows["withargs"]["status"] == "needs-custom-args"
    assert "TOKEN" in rows["withargs"]["message"]
    client.wait_ready("plain")
    assert client.invoke("plain", {"back": True}).status_code == 200
    client.start("withargs", custom_args={"TOKEN": "abc"})
    client.wait_ready("withargs")
    assert client.invoke("withargs", {"show_args": ["TOKEN"]}).json()["globals"] == {"TOKEN": "abc"}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_kernels(name: str, count: int, timeout: float = 20.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        kernels = [k for k in client.get(name)["kernels"] if k["state"] == "ready"]
        if len(kernels) == count:
            return [k["pod"] for k in kernels]
        assert time.monotonic() < deadline, f"{name}: {len(kernels)} ready kernels, wanted {count}"
        time.sleep(0.05)
