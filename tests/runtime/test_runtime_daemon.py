"""The daemon's lifecycle: on-demand start, one daemon per MLOPS_HOME, a clear error on a busy port."""

from __future__ import annotations

import json
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pipeline_utils.backends.local.runtime import client
from pipeline_utils.errors import PipelineError
from tests.conftest import free_port, run_cli

pytestmark = pytest.mark.slow


def test_one_daemon_per_home_even_when_started_concurrently(monkeypatch: pytest.MonkeyPatch, mlops_home: Path) -> None:
    monkeypatch.setenv("MLOPS_RUNTIME_PORT", str(free_port()))
    try:
        with ThreadPoolExecutor(3) as pool:
            urls = list(pool.map(lambda _: client.ensure_daemon(), range(3)))
        assert len(set(urls)) == 1
        first = client.daemon_info()
        assert client.ensure_daemon() == urls[0]
        assert client.daemon_info()["pid"] == first["pid"]
        assert (mlops_home / "runtime" / "daemon.json").is_file()
    finally:
        assert client.shutdown_daemon()
    assert client.daemon_info() is None
    assert not (mlops_home / "runtime" / "daemon.json").exists()


def test_busy_port_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        monkeypatch.setenv("MLOPS_RUNTIME_PORT", str(busy.getsockname()[1]))
        with pytest.raises(PipelineError, match="MLOPS_RUNTIME_PORT"):
            client.ensure_daemon(timeout=10)


def test_runtime_status_and_stop_commands_act_on_this_environments_daemon(runtime: str) -> None:
    status = run_cli("runtime", "status", "--json")
    assert status.returncode == 0, status.stderr
    record = json.loads(status.stdout)
    assert record["running"] is True and record["base_url"] == runtime and record["pid"] == client.daemon_info()["pid"]
    stopped = run_cli("runtime", "stop")
    assert stopped.returncode == 0 and "runtime stopped" in stopped.stderr
    assert client.daemon_info() is None
    assert json.loads(run_cli("runtime", "status", "--json").stdout)["running"] is False
    assert "the runtime is not running" in run_cli("runtime", "stop").stderr
