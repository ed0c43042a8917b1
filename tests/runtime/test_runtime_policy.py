"""The kernel policy: scaling, idle release, min 0, timeouts, resources, live profile updates."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from pipeline_utils.backends.local.runtime import client

pytestmark = pytest.mark.slow


def _wait(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def _row(name: str) -> dict:
    return next(r for r in client.list_deployments() if r["name"] == name)


def test_scale_up_while_queued_and_release_when_idle(runtime: str, echo_kernel: Path) -> None:
    client.create("scale", echo_kernel, profile={"kernel_min": 1, "kernel_max": 3, "kernel_delay_release_time": 1})
    client.start("scale")
    client.wait_ready("scale")
    url = client.deployment_url("scale")
    with ThreadPoolExecutor(9) as pool:
        answers = list(pool.map(lambda _: httpx.post(url, json={"sleep": 1.2}, timeout=30), range(9)))
    assert all(a.status_code == 200 for a in answers)
    assert len({a.json()["pod"] for a in answers}) == 3
    assert _row("scale")["kernels_running"] <= 3
    _wait(lambda: _row("scale")["kernels_running"] == 1)


def test_kernel_min_zero_starts_on_first_request(runtime: str, echo_kernel: Path) -> None:
    client.create("lazy", echo_kernel, profile={"kernel_min": 0, "kernel_max": 1, "kernel_delay_release_time": 0.5})
    client.start("lazy")
    assert client.wait_ready("lazy")["kernels_running"] == 0
    answer = client.invoke("lazy", {"x": 1})
    assert answer.status_code == 200
    _wait(lambda: _row("lazy")["kernels_running"] == 0)
    assert client.invoke("lazy", {"x": 2}).status_code == 200


def test_timeout_gives_504_only_for_hanging_inputs(runtime: str, echo_kernel: Path) -> None:
    client.create("hang", echo_kernel, profile={"kernel_min": 1, "kernel_max": 2, "task_execution_timeout": 1})
    client.start("hang")
    client.wait_ready("hang")
    url = client.deployment_url("hang")
    payloads = [{"hang": True} if i % 5 == 0 else {"i": i} for i in range(15)]
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda p: httpx.post(url, json=p, timeout=30), payloads))
    for payload, answer in zip(payloads, answers, strict=True):
        if "hang" in payload:
            assert answer.status_code == 504
            assert "task_execution_timeout" in answer.json()["error"]
        else:
            assert answer.status_code == 200, answer.text
    assert client.invoke("hang", {"after": True}).status_code == 200
    metrics = httpx.get(f"{runtime}/metrics").text
    assert 'mlops_runtime_task_timeouts_total{deployment="hang"} 3' in metrics


def test_crashed_kernel_is_replaced_and_request_gets_clear_error(runtime: str, echo_kernel: Path) -> None:
    client.create("crash", echo_kernel)
    client.start("crash")
    client.wait_ready("crash")
    first_pod = client.invoke("crash", {}).json()["pod"]
    crashed = client.invoke("crash", {"crash": True})
    assert crashed.status_code == 502
    assert "exited unexpectedly" in crashed.json()["error"]
    answer = client.invoke("crash", {})
    assert answer.status_code == 200 and answer.json()["pod"] != first_pod


def test_resources_enforced_and_profile_updated_live(runtime: str, echo_kernel: Path) -> None:
    client.create("res", echo_kernel, profile={"n_cpus": 1, "memory_allocation": 1024})
    client.start("res")
    client.wait_ready("res")
    answer = client.invoke("res", {"affinity": True}).json()
    assert len(answer["affinity"]) == 1
    assert answer["rlimit_as"] == 1024 * 1024 * 1024
    view = client.get("res")
    assert view["profile"]["resource"] == {"n_cpus": 1, "memory_allocation": 1024, "enable_gpus": False}
    assert view["enforcement"]["memory_limit"] == "RLIMIT_AS"
    profile = client.update_profile("res", {"policy.kernel_min": 2, "kernel_max": 2})
    assert profile["policy"]["kernel_min"] == 2
    _wait(lambda: _row("res")["kernels_running"] == 2 and client.get("res")["kernels_ready"] == 2)
    client.update_profile("res", {"kernel_min": 1, "kernel_max": 1})
    _wait(lambda: _row("res")["kernels_running"] == 1)
    with pytest.raises(Exception, match="unknown profile setting"):
        client.update_profile("res", {"policy.kernels": 3})
    with pytest.raises(Exception, match="above kernel_max"):
        client.update_profile("res", {"kernel_min": 5})


def test_kernel_start_timeout(runtime: str, echo_kernel: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_RUNTIME_START_TIMEOUT", "1")
    assert client.shutdown_daemon()
    client.ensure_daemon()
    client.create("stuck", echo_kernel, custom_args={"ECHO_START_DELAY": "30"})
    client.start("stuck")
    with pytest.raises(Exception, match="did not finish within 1 s"):
        client.wait_ready("stuck", timeout=20)
