"""Lifecycle under stress: drain with no ready kernel, start racing stop, CPU allocation, supervised housekeeping,
the allow-listed environment of the daemon and its kernels, plain kernel settings."""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from collections import Counter
from contextlib import redirect_stderr
from pathlib import Path

import httpx
import pytest

from pipeline_utils.backends.local.runtime import client, records

CALLER_SECRETS = {"CPD_API_KEY": "caller-api-key-0001", "USER_ACCESS_TOKEN": "caller-token-0002"}


def test_stop_drains_a_request_queued_while_no_kernel_is_ready(runtime: str, echo_kernel: Path) -> None:
    client.create(
        "cold", echo_kernel, profile={"kernel_min": 0, "kernel_max": 1}, settings={"ECHO_START_DELAY": "0.5"}
    )
    client.start("cold")
    client.wait_ready("cold")
    url = client.deployment_url("cold")
    answers: list[httpx.Response] = []
    sender = threading.Thread(target=lambda: answers.append(httpx.post(url, json={"n": 1}, timeout=30)))
    sender.start()
    deadline = time.monotonic() + 5
    while client.get("cold")["queue_depth"] == 0 and not answers:
        assert time.monotonic() < deadline, "the request never queued"
        time.sleep(0.01)
    row = client.stop("cold")
    sender.join()
    assert [a.status_code for a in answers] == [200]
    assert row["status"] == "stopped" and row["kernels_running"] == 0
    kernel_logs = list((Path(os.environ["MLOPS_HOME"]) / "runtime" / "logs" / "cold").glob("*.log"))
    assert len(kernel_logs) == 1, "the drain started more than one kernel"


def test_start_during_stop_waits_and_leaves_state_and_record_in_step(runtime: str, echo_kernel: Path) -> None:
    client.create("race", echo_kernel)
    client.start("race")
    client.wait_ready("race")
    url = client.deployment_url("race")
    slow = threading.Thread(target=lambda: httpx.post(url, json={"sleep": 0.8}, timeout=30))
    slow.start()
    time.sleep(0.2)
    stopper = threading.Thread(target=client.stop, args=("race",))
    stopper.start()
    time.sleep(0.1)
    row = client.start("race")
    stopper.join()
    slow.join()
    assert row["status"] in ("starting", "ready")
    client.wait_ready("race")
    (record,) = [r for r in records.all_records() if r["name"] == "race"]
    assert record["desired"] == "started"
    assert httpx.post(url, json={}).status_code == 200


def test_kernels_of_all_deployments_are_spread_over_the_least_loaded_cpus(runtime: str, echo_kernel: Path) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs at least two CPUs to see kernels spread")
    names = [f"cpu{i}" for i in range(2 * len(cpus))]
    for name in names:
        client.create(name, echo_kernel, profile={"n_cpus": 1})
        client.start(name)
    pinned: Counter[int] = Counter()
    for name in names:
        client.wait_ready(name)
        (cpu,) = client.invoke(name, {"affinity": True}).json()["affinity"]
        pinned[cpu] += 1
    assert pinned == Counter({cpu: 2 for cpu in cpus})


def test_bad_drain_timeout_is_a_one_line_400(runtime: str, echo_kernel: Path) -> None:
    client.create("drainarg", echo_kernel)
    with pytest.raises(Exception, match="drain_timeout") as caught:
        client.stop("drainarg", drain_timeout="soon")  # type: ignore[arg-type]
    assert "\n" not in str(caught.value) and type(caught.value).__name__ == "BadInput"


def test_housekeeping_logs_a_failing_pool_and_tends_the_others(tmp_path: Path) -> None:
    from pipeline_utils.backends.local.runtime.daemon import Runtime
    from pipeline_utils.backends.local.runtime.keeper import Keeper

    class Tended:
        def __init__(self, name: str, fail: bool) -> None:
            self.name, self.fail, self.rounds = name, fail, 0

        def check_starts(self, now: float) -> None:
            if self.fail:
                raise RuntimeError("broken pool")
            self.rounds += 1

        def release_idle(self, now: float) -> None:
            pass

        def maintain(self) -> None:
            pass

    import asyncio

    async def rounds() -> tuple[Tended, Tended, str]:
        ours, _theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        runtime = Runtime(tmp_path, 0, Keeper(ours))
        broken, healthy = Tended("broken", True), Tended("healthy", False)
        runtime.pools = {"broken": broken, "healthy": healthy}  # type: ignore[dict-item]
        errors = io.StringIO()
        with redirect_stderr(errors):
            for _ in range(3):
                runtime.tend(time.monotonic())
        return broken, healthy, errors.getvalue()

    _, healthy, errors = asyncio.run(rounds())
    assert healthy.rounds == 3
    assert errors.count("housekeeping of broken failed") == 3 and "RuntimeError: broken pool" in errors


@pytest.fixture
def caller_secrets(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Secrets in the environment of the process that starts the runtime (as a CPD user's shell has them)."""
    for name, value in CALLER_SECRETS.items():
        monkeypatch.setenv(name, value)
    return CALLER_SECRETS


def test_the_callers_secrets_reach_neither_the_runtime_nor_any_kernel(
    caller_secrets: dict[str, str], runtime: str, echo_kernel: Path
) -> None:
    client.create("envcheck", echo_kernel, custom_args={"OWN_TOKEN": "own-value-0003"})
    client.start("envcheck")
    client.wait_ready("envcheck")
    answer = client.invoke("envcheck", {"show_args": [*caller_secrets, "OWN_TOKEN"]}).json()
    assert answer["env"] == {**dict.fromkeys(caller_secrets), "OWN_TOKEN": "own-value-0003"}
    info = client.daemon_info()
    for pid in (info["pid"], info["supervisor"]):
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert not any(value.encode() in environ for value in caller_secrets.values())


def test_plain_settings_are_stored_shown_and_survive_a_daemon_restart(runtime: str, echo_kernel: Path) -> None:
    client.create("withsettings", echo_kernel, settings={"VOLUME_DISPLAY_NAME": "IHCVolume"})
    client.start("withsettings")
    client.wait_ready("withsettings")
    assert client.get("withsettings")["settings"] == {"VOLUME_DISPLAY_NAME": "IHCVolume"}
    client.shutdown_daemon()
    client.ensure_daemon()
    client.wait_ready("withsettings")
    answer = client.invoke("withsettings", {"show_args": ["VOLUME_DISPLAY_NAME"]}).json()
    assert answer["globals"] == {"VOLUME_DISPLAY_NAME": "IHCVolume"}


def test_a_name_both_setting_and_custom_arg_is_refused(runtime: str, echo_kernel: Path) -> None:
    with pytest.raises(Exception, match="TOKEN is given both as a kernel setting and as a custom arg"):
        client.create("both", echo_kernel, settings={"TOKEN": "a"}, custom_args={"TOKEN": "b"})
    assert client.list_deployments() == []


def test_a_folder_holding_the_runtimes_state_is_refused(runtime: str) -> None:
    home = Path(os.environ["MLOPS_HOME"])
    with pytest.raises(Exception, match="holds the runtime's state directory") as caught:
        client.create("recursive", home.parent)
    assert "\n" not in str(caught.value) and type(caught.value).__name__ == "BadInput"
    assert client.list_deployments() == []


def test_a_bad_server_setting_is_a_one_line_error_before_anything_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("MLOPS_RUNTIME_PORT", str(free_port()))
    monkeypatch.setenv("MLOPS_RUNTIME_MAX_CONNECTIONS", "many")
    with pytest.raises(Exception, match="MLOPS_RUNTIME_MAX_CONNECTIONS") as caught:
        client.ensure_daemon()
    assert "\n" not in str(caught.value) and type(caught.value).__name__ == "BadInput"
    assert client.daemon_info() is None
