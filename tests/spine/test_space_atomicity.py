"""Concurrent writers lose nothing; a crash mid-stage leaves no half asset visible and no partial zip."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time

from pipeline_utils.space import get_space
from tests.spine.conftest import ROOT


def _add_entries(home: str, worker: int, count: int) -> None:
    os.environ["MLOPS_HOME"] = home
    from pipeline_utils.space import get_space

    space = get_space()
    for i in range(count):
        key = f"asset-{worker}-{i}"
        space.put_entries({key: {"model_name": key, "wmla_deployment": {"deployment_name": f"d-{worker}-{i}"}}})


def test_eight_processes_adding_fifty_entries_each_lose_none(mlops_home):
    get_space()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_add_entries, args=(str(mlops_home), w, 50)) for w in range(8)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
        assert process.exitcode == 0
    document = get_space().metadata()
    assert len(document) == 400
    assert document["asset-7-49"]["model_name"] == "asset-7-49"


def _update_counter(home: str, key: str, count: int) -> None:
    os.environ["MLOPS_HOME"] = home
    from pipeline_utils.space import get_space

    space = get_space()
    for _ in range(count):
        space.update_entry(key, lambda e: {**e, "counter": e.get("counter", 0) + 1})


def test_concurrent_read_modify_write_updates_are_not_lost(mlops_home):
    get_space().put_entries({"k": {"counter": 0}})
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_update_counter, args=(str(mlops_home), "k", 25)) for _ in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
    assert get_space().metadata()["k"]["counter"] == 100


def test_a_crash_mid_stage_leaves_no_half_asset(mlops_home, tmp_path):
    big = tmp_path / "big-model"
    big.mkdir()
    for i in range(40):
        (big / f"part-{i}.bin").write_bytes(os.urandom(1 << 20))
    script = textwrap.dedent(
        f"""
        from pipeline_utils.space import get_space, stage
        stage(get_space(), {str(big)!r}, {str(ROOT / 'examples' / 'deployment')!r},
              {str(ROOT / 'examples' / 'deployment_metadata.draft.yml')!r}, force=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ}, cwd=ROOT)
    deadline = time.time() + 30
    scratch = mlops_home / "space" / "tmp"
    while time.time() < deadline and not (scratch.exists() and any(scratch.iterdir())):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    space = get_space()
    for asset in space.list_assets():
        blob = mlops_home / "space" / "blobs" / asset.sha256[:2] / asset.sha256
        assert blob.is_file() and blob.stat().st_size == asset.size
    assert all(asset.name != "big-model.zip" for asset in space.list_assets())
    assert space.metadata() == {}
    assert list(scratch.iterdir()) == [], "the killed stager's partial zip is removed on the next start"
