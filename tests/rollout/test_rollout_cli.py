"""Rollouts for users: ``deploy rollout`` runs the A4 notebook (kept with the runs), ``rollout status`` shows
every step, a rollout whose process is killed shows as interrupted and ``rollout resume`` carries it on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline_utils.notebooks import get_run, read_scraps
from tests.conftest import ROOT
from tests.conftest import run_cli as cli
from tests.rollout.conftest import in_distribution, traffic

pytestmark = pytest.mark.slow


def refused(result, code: int, *fragments: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr
    assert any(all(f in line for f in fragments) for line in lines[-1:]), result.stderr


def test_deploy_rollout_runs_the_notebook_and_status_shows_each_step(shop, tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"instances": [[4, 5]]}))
    with traffic(shop, in_distribution):
        done = cli("deploy", "rollout", "--endpoint", "shop", "--to", "green", "--steps", "50,100", "--hold", "2s",
                   "--request", request, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "step 1/2: shop blue=50 green=50" in done.stderr and "rollout complete" in done.stderr
    assert shop.get_endpoint("shop")["traffic"] == {"blue": 0, "green": 100}
    status = cli("rollout", "status", "--endpoint", "shop", "--json")
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["state"] == "completed" and shown["steps"] == [50, 100] and shown["monitors"] == ["drift_metrics"]
    assert [e["kind"] for e in shown["events"]] == [
        "plan", "check", "traffic", "check", "hold", "evaluation", "decision",
        "traffic", "check", "hold", "evaluation", "decision", "completed"]
    run = get_run(shown["run_id"])
    assert run.kind == "deploy rollout" and run.status == "succeeded"
    (notebook,) = run.notebooks
    assert notebook.notebook == "A4_Rollout.ipynb"
    assert read_scraps(notebook.path) == {"rollout_id": shown["id"], "rollout_state": "completed",
                                          "rollout_reason": "green takes 100 % of shop"}
    table = cli("rollout", "status", "--endpoint", "shop")
    assert table.returncode == 0 and "completed" in table.stdout and "pinned check request: HTTP 200" in table.stdout
    listed = json.loads(cli("rollout", "list", "--json").stdout)
    assert [r["id"] for r in listed] == [shown["id"]]


def test_a_rolled_back_rollout_exits_1_with_its_reason(shop) -> None:
    done = cli("deploy", "rollout", "--endpoint", "shop", "--to", "green", "--steps", "10,100", "--hold", "0s",
               timeout=300)
    assert done.returncode == 1
    assert "rolled-back: the evaluation of monitor drift_metrics failed" in done.stderr.strip().splitlines()[-1]
    assert shop.get_endpoint("shop")["traffic"] == {"blue": 100, "green": 0}


def test_bad_rollouts_are_refused_in_one_line_before_anything_runs(shop) -> None:
    refused(cli("deploy", "rollout", "--endpoint", "shop", "--to", "green", "--steps", "50,10"), 2, "--steps")
    refused(cli("deploy", "rollout", "--endpoint", "shop", "--to", "green", "--hold", "soon"), 2, "--hold")
    refused(cli("deploy", "rollout", "--endpoint", "shop", "--to", "green", "--request", "nothere.json"), 2,
            "--request")
    refused(cli("rollout", "status", "--endpoint", "shop"), 3, "--endpoint", "has had no rollout")
    refused(cli("rollout", "abort", "--endpoint", "shop"), 3, "has had no rollout")
    refused(cli("rollout", "status"), 2, "give an endpoint or a rollout id")
    assert shop.get_endpoint("shop")["traffic"] == {"blue": 100, "green": 0}


def kill_mid_rollout(shop, hold: str) -> None:
    """Start ``deploy rollout`` (10 then 100 %) and kill it, notebook kernel and all, once green takes 10 %."""
    driver = subprocess.Popen(
        [sys.executable, str(ROOT / "run_pipeline.py"), "deploy", "rollout", "--endpoint", "shop", "--to", "green",
         "--steps", "10,100", "--hold", hold, "--monitor", "drift_metrics"],
        cwd=ROOT, env=os.environ.copy(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while shop.get_endpoint("shop")["traffic"]["green"] != 10 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    deadline = time.monotonic() + 10
    while json.loads(cli("rollout", "status", "--endpoint", "shop", "--json").stdout)["state"] != "interrupted":
        assert time.monotonic() < deadline, "the rollout never showed as interrupted"
        time.sleep(0.2)


def test_a_killed_rollout_is_interrupted_and_resumes_where_it_was(shop) -> None:
    kill_mid_rollout(shop, "4s")
    shown = cli("rollout", "status", "--endpoint", "shop")
    assert "rollout resume --endpoint shop" in shown.stderr
    assert shop.get_endpoint("shop")["traffic"] == {"blue": 90, "green": 10}, "traffic stays where it was"
    refused(cli("deploy", "rollout", "--endpoint", "shop", "--to", "green"), 4, "its controller is gone")
    with traffic(shop, in_distribution):
        resumed = cli("rollout", "resume", "--endpoint", "shop", timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert shop.get_endpoint("shop")["traffic"] == {"blue": 0, "green": 100}
    events = json.loads(cli("rollout", "status", "--endpoint", "shop", "--json").stdout)["events"]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "plan" and "resume" in kinds and kinds[-1] == "completed"
    assert [e["percent"] for e in events if e["kind"] == "traffic"][-1] == 100
    refused(cli("rollout", "resume", "--endpoint", "shop"), 2, "only an interrupted rollout can be resumed")


def test_abort_returns_the_traffic_of_an_interrupted_rollout(shop) -> None:
    kill_mid_rollout(shop, "60s")
    aborted = cli("rollout", "abort", "--endpoint", "shop", "--reason", "give up")
    assert aborted.returncode == 0, aborted.stderr
    assert "rolled-back: aborted: give up" in aborted.stderr
    assert shop.get_endpoint("shop")["traffic"] == {"blue": 100, "green": 0}
    refused(cli("rollout", "abort", "--endpoint", "shop"), 4, "no rollout is under way")
