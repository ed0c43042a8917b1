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


def test_killed_daemon_comes_back_by_itself_with_custom_arg_deployments_serving(
    runtime: str, echo_kernel: Path
) -> None:
    client.create("plain", echo_kernel)
    client.create("withargs", echo_kernel, custom_args={"TOKEN": "abc"})
    client.create("idle", echo_kernel)
    for name in ("plain", "withargs"):
        client.start(name)
        client.wait_ready(name)
    old = client.daemon_info()
    kernel_pids = [k["pid"] for n in ("plain", "withargs") for k in client.get(n)["kernels"]]
    killed_at: list[float] = []

    def progress(done: int) -> None:
        if done >= 300 and not killed_at:
            killed_at.append(time.monotonic())
            os.kill(old["pid"], signal.SIGKILL)

    connections = 8
    answers = load(
        client.deployment_url("withargs"), 1500, connections, lambda i: {"show_args": ["TOKEN"]}, progress,
        reconnect=True,
    )
    failed = [body for status, body in answers if status != 200]
    print(f"requests failed during the daemon's restart: {len(failed)} of {len(answers)} ({connections} connections)")
    assert killed_at and len(answers) == 1500
    assert len(failed) <= connections, failed
    assert not any(_alive(pid) for pid in kernel_pids), "kernels outlived their daemon"
    back = next(i for i, (status, _) in enumerate(answers) if i > 300 and status == 200)
    assert json.loads(answers[back][1])["globals"] == {"TOKEN": "abc"}
    new = client.daemon_info()
    assert new["pid"] != old["pid"] and new["supervisor"] == old["supervisor"]
    rows = {r["name"]: r for r in client.list_deployments()}
    assert rows["idle"]["status"] == "stopped"
    assert rows["plain"]["status"] == "ready" and rows["withargs"]["status"] == "ready"
    assert client.invoke("plain", {"back": True}).status_code == 200


def test_daemon_back_within_the_restart_bound_with_no_user_action(runtime: str, echo_kernel: Path) -> None:
    client.create("quick", echo_kernel, custom_args={"TOKEN": "abc"})
    client.start("quick")
    client.wait_ready("quick")
    old = client.daemon_info()
    url = client.deployment_url("quick")
    os.kill(old["pid"], signal.SIGKILL)
    killed = time.monotonic()
    while True:
        try:
            answer = httpx.post(url, json={"show_args": ["TOKEN"]}, timeout=10)
            if answer.status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() - killed < 10, "the daemon did not come back"
        time.sleep(0.02)
    print(f"daemon back and serving {time.monotonic() - killed:.2f} s after SIGKILL")
    assert answer.json()["globals"] == {"TOKEN": "abc"}


def test_stopping_the_runtime_stops_its_supervisor(runtime: str) -> None:
    info = client.daemon_info()
    assert client.shutdown_daemon(timeout=10)
    assert not _alive(info["supervisor"]) and not _alive(info["pid"])


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
