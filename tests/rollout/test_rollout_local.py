"""Rollouts on the local runtime, driven in this process: completed, rolled back by a violated threshold, rolled
back by a failed evaluation, aborted, stopped by an outside change, and carried through a runtime restart."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from pipeline_utils.backends.local.runtime.client import default_client
from pipeline_utils.errors import BadInput, Conflict, NotFound
from pipeline_utils.monitor.api import configure_monitors, monitor_history
from pipeline_utils.rollout import abort_rollout, plan_rollout, rollout_status, run_rollout
from tests.rollout.conftest import drift_monitor, in_distribution, shifted, traffic

pytestmark = pytest.mark.slow


def kinds(rollout_id: str) -> list[tuple[str, int | None]]:
    """The recorded events as (kind, percent)."""
    return [(e.kind, e.percent) for e in rollout_status(rollout_id=rollout_id)[1]]


def test_a_rollout_completes_step_by_step_when_its_monitor_passes(shop) -> None:
    planned = plan_rollout("shop", "green", "10,50,100", "2s")
    assert planned.state == "running" and planned.step == -1 and planned.monitors == ["drift_metrics"]
    assert shop.get_endpoint("shop")["traffic"] == {"blue": 100, "green": 0}, "planning moves no traffic"
    with traffic(shop, in_distribution) as statuses:
        ended = run_rollout(planned.id)
    assert ended.state == "completed", ended.reason
    assert set(statuses) == {200}
    assert shop.get_endpoint("shop")["traffic"] == {"blue": 0, "green": 100}
    steps = [("traffic", p) for p in (10, 50, 100)]
    recorded = kinds(ended.id)
    assert [k for k in recorded if k[0] == "traffic"] == steps
    for percent in (10, 50, 100):
        assert recorded.count(("hold", percent)) == 1 and recorded.count(("evaluation", percent)) == 1
        assert ("decision", percent) in recorded
    assert recorded[0] == ("plan", None) and recorded[-1][0] == "completed"
    runs = monitor_history("green", "drift_metrics")
    assert [r.state for r in runs] == ["finished"] * 3 and not any(r.issues for r in runs)
    _, events = rollout_status("shop")
    evaluations = [e for e in events if e.kind == "evaluation"]
    assert [e.detail["run_id"] for e in evaluations] == [r.run_id for r in runs]
    assert {m["metric"] for m in evaluations[0].detail["measurements"]} >= {"psi_max", "num_records"}


def test_a_violated_threshold_returns_all_traffic_to_the_previous_deployment(shop) -> None:
    planned = plan_rollout("shop", "green", [10, 50, 100], "2s")
    with traffic(shop, shifted):
        ended = run_rollout(planned.id)
    assert ended.state == "rolled-back"
    assert "monitor drift_metrics: psi_max =" in ended.reason and "violates its upper limit 0.2" in ended.reason
    assert shop.get_endpoint("shop")["traffic"] == {"blue": 100, "green": 0}
    assert kinds(ended.id) == [("plan", None), ("traffic", 10), ("hold", 10), ("evaluation", 10), ("decision", 10),
                               ("traffic", 0), ("rolled-back", None)]
    (run,) = monitor_history("green", "drift_metrics")
    assert [m.metric for m in run.violations] == ["psi_max"]


def test_a_failed_evaluation_rolls_back_too(shop) -> None:
    configure_monitors("green", {"openscale_custom_metric_provider": {
        "drift_metrics": drift_monitor("reference.csv", min_records=100_000, max_records=100_000)}}, replace=True,
        first_run=False)
    planned = plan_rollout("shop", "green", "50,100", "500ms")
    with traffic(shop, in_distribution):
        ended = run_rollout(planned.id)
    assert ended.state == "rolled-back"
    assert "the evaluation of monitor drift_metrics failed" in ended.reason and "at least 100000" in ended.reason
    assert shop.get_endpoint("shop")["traffic"] == {"blue": 100, "green": 0}
    assert [k for k, _ in kinds(ended.id)] == ["plan", "traffic", "hold", "evaluation", "decision", "traffic",
                                               "rolled-back"]


def test_a_rollout_is_checked_before_anything_moves(shop) -> None:
    with pytest.raises(NotFound, match="no endpoint named 'nowhere'"):
        plan_rollout("nowhere", "green", "10,100", "1s")
    with pytest.raises(NotFound, match="green has no monitor 'other'") as caught:
        plan_rollout("shop", "green", "10,100", "1s", monitors=["other"])
    assert caught.value.field == "--monitor"
    with pytest.raises(BadInput, match="--hold"):
        plan_rollout("shop", "green", "10,100", "soon")
    with pytest.raises(BadInput, match="no other deployment taking traffic") as caught:
        plan_rollout("shop", "blue", "10,100", "1s")
    assert caught.value.field == "--endpoint"
    shop.stop("green")
    with pytest.raises(Conflict, match="only a ready deployment can be rolled out"):
        plan_rollout("shop", "green", "10,100", "1s")
    with pytest.raises(NotFound, match="has had no rollout"):
        rollout_status("shop", None)
    assert shop.get_endpoint("shop")["traffic"] == {"blue": 100, "green": 0}


def test_one_rollout_at_a_time_and_an_abort_returns_the_traffic(shop) -> None:
    planned = plan_rollout("shop", "green", "10,100", "60s", monitors=[])
    with pytest.raises(Conflict, match=f"rollout {planned.id} of green is under way"):
        plan_rollout("shop", "green", "10,100", "1s")
    ended = {}
    controller = threading.Thread(target=lambda: ended.update(rollout=run_rollout(planned.id)))
    controller.start()
    deadline = time.monotonic() + 20
    while shop.get_endpoint("shop")["traffic"]["green"] != 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    aborted = abort_rollout("shop", "the error budget is spent")
    controller.join(timeout=30)
    assert aborted.state == ended["rollout"].state == "rolled-back"
    assert aborted.reason == "aborted: the error budget is spent"
    assert shop.get_endpoint("shop")["traffic"] == {"blue": 100, "green": 0}
    assert ("abort", 10) not in kinds(planned.id) and "abort" in [k for k, _ in kinds(planned.id)]


def test_an_outside_change_of_the_split_stops_the_rollout_without_reverting_it(shop) -> None:
    planned = plan_rollout("shop", "green", "10,100", "30s", monitors=[])
    ended = {}
    controller = threading.Thread(target=lambda: ended.update(rollout=run_rollout(planned.id)))
    controller.start()
    deadline = time.monotonic() + 20
    while shop.get_endpoint("shop")["traffic"]["green"] != 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    shop.set_traffic("shop", {"blue": 70, "green": 30})
    controller.join(timeout=30)
    assert ended["rollout"].state == "stopped"
    assert "was changed outside the rollout" in ended["rollout"].reason
    assert shop.get_endpoint("shop")["traffic"] == {"blue": 70, "green": 30}


def test_a_rollout_carries_on_through_a_runtime_restart(shop) -> None:
    planned = plan_rollout("shop", "green", "10,50,100", "4s")
    client = default_client()
    ended = {}
    with traffic(shop, in_distribution) as statuses:
        controller = threading.Thread(target=lambda: ended.update(rollout=run_rollout(planned.id)))
        controller.start()
        deadline = time.monotonic() + 20
        while shop.get_endpoint("shop")["traffic"]["green"] != 50 and time.monotonic() < deadline:
            time.sleep(0.1)
        before = client.daemon_info()["pid"]
        os.kill(before, signal.SIGKILL)
        controller.join(timeout=120)
    assert client.daemon_info()["pid"] != before, "the supervisor brought a new daemon up"
    assert ended["rollout"].state == "completed", ended["rollout"].reason
    assert shop.get_endpoint("shop")["traffic"] == {"blue": 0, "green": 100}
    assert [p for k, p in kinds(planned.id) if k == "traffic"] == [10, 50, 100]
    assert statuses.count(200) > 0.9 * len(statuses), f"{statuses.count(200)} of {len(statuses)} answered"
