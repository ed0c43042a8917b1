"""Every test gets its own state directory, so nothing leaks between tests or into ~/.mlops."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline_utils.netutil import free_port

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: object, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run ``run_pipeline.py`` as a real process, as a scheduler would: no terminal, this test's environment."""
    return subprocess.run(
        [sys.executable, str(ROOT / "run_pipeline.py"), *map(str, args)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


@pytest.fixture(autouse=True)
def mlops_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``MLOPS_HOME`` for each test (volumes live under it too)."""
    home = tmp_path / "mlops-home"
    home.mkdir()
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.delenv("MLOPS_VOLUMES_DIR", raising=False)
    return home




@pytest.fixture
def runtime(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, mlops_home: Path):
    """A runtime daemon for this test's MLOPS_HOME on a free port; shut down (killed if need be) after.

    Tests without estimators give the kernels' zygote a light preload, to save CPU on small machines.
    """
    import contextlib
    import json
    import signal

    from pipeline_utils.backends.local.runtime.client import default_client

    monkeypatch.setenv("MLOPS_RUNTIME_PORT", str(free_port()))
    if "sklearn_folders" not in request.fixturenames:
        monkeypatch.setenv("MLOPS_RUNTIME_PRELOAD", "json")
    client = default_client()
    base = client.ensure_daemon()
    yield base
    info = client.daemon_info()
    if info is not None and not client.shutdown_daemon(timeout=10):
        for pid in (info.get("supervisor"), info["pid"]):
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.kill(pid, signal.SIGKILL)
    daemon_file = mlops_home / "runtime" / "daemon.json"
    if daemon_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError, KeyError, TypeError):
            recorded = json.loads(daemon_file.read_text())
            for pid in (recorded.get("supervisor"), recorded["pid"]):
                os.kill(pid, signal.SIGKILL)
