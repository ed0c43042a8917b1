"""Local implementations take their settings in the constructor: instances built from two environments work side
by side in one process, each on its own state directory and port, and none reads or changes ``os.environ``."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest

from pipeline_utils.backends import create
from pipeline_utils.training import JobStatus, build_job_spec
from tests.conftest import free_port


def _environments(tmp_path: Path, *, ports: bool = False) -> list[dict[str, str]]:
    """Two environments with their own state directories (and their own free runtime ports)."""
    environments = []
    for name in ("first", "second"):
        environment = {"MLOPS_HOME": str(tmp_path / name), "MLOPS_RUNTIME_PRELOAD": "json"}
        if ports:
            environment["MLOPS_RUNTIME_PORT"] = str(free_port())
        environments.append(environment)
    return environments


def test_spaces_monitor_services_and_runners_of_two_homes_keep_apart(tmp_path: Path, mlops_home: Path) -> None:
    before = dict(os.environ)
    first, second = _environments(tmp_path)
    spaces = [create("space", first), create("space", second)]
    (tmp_path / "model.bin").write_bytes(b"weights")
    asset = spaces[0].add_asset(tmp_path / "model.bin", "model.bin", "model")
    assert [a.id for a in spaces[0].list_assets()] == [asset.id]
    assert spaces[1].list_assets() == []
    spaces[1].put_entries({"other": {"model_name": "other"}})
    assert list(spaces[0].metadata()) == [] and list(spaces[1].metadata()) == ["other"]

    monitors = [create("monitor_service", first), create("monitor_service", second)]
    subscription = monitors[0].create_subscription("iris")
    assert monitors[0].subscription_id("iris") == subscription and monitors[1].subscription_id("iris") is None

    runners = [create("training_runner", first), create("training_runner", second)]
    assert [runner.volumes.root for runner in runners] == [tmp_path / name / "volumes" for name in ("first", "second")]
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "train.py").write_text("print('trained')\n")
    spec = build_job_spec(scripts_dir=tmp_path / "scripts", main_file="train.py")
    info = runners[0].wait(runners[0].submit(spec).job_id, timeout=30)
    assert info.status is JobStatus.FINISHED and info.log_tail == "trained"
    assert info.job_dir.is_relative_to(tmp_path / "first")
    assert runners[1].list() == []

    assert dict(os.environ) == before
    assert not (mlops_home / "mlops.db").exists()


@pytest.mark.slow
def test_targets_of_two_homes_run_their_own_daemons_on_their_own_ports(
    tmp_path: Path, mlops_home: Path, echo_kernel: Path
) -> None:
    before = dict(os.environ)
    environments = _environments(tmp_path, ports=True)
    targets = [create("deploy_target", environment) for environment in environments]
    try:
        for target, environment in zip(targets, environments, strict=True):
            port = environment["MLOPS_RUNTIME_PORT"]
            assert target.url("echo") == f"http://127.0.0.1:{port}/dlim/v1/inference/echo"
            info = target.client.daemon_info()
            assert info["port"] == int(port)
            assert (Path(environment["MLOPS_HOME"]) / "runtime" / "daemon.json").is_file()
        first, second = targets
        first.create("echo", echo_kernel)
        first.start("echo")
        first.wait_ready("echo")
        status, answer = first.predict("echo", {"who": "first"})
        assert status == 200 and answer["model_path"].startswith(str(tmp_path / "first"))
        assert [row["name"] for row in first.list()] == ["echo"] and second.list() == []
        assert first.client.daemon_info()["pid"] != second.client.daemon_info()["pid"]
    finally:
        for target in targets:
            _shut_down(target)
    assert dict(os.environ) == before
    assert not (mlops_home / "runtime").exists()


def _shut_down(target) -> None:
    """Stop the target's daemon (killed if it does not stop in time)."""
    info = target.client.daemon_info()
    if info is not None and not target.client.shutdown_daemon(timeout=10):
        with contextlib.suppress(ProcessLookupError):
            os.kill(info["pid"], signal.SIGKILL)
