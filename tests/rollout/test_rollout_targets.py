"""Rollouts on other deploy targets: the Ray Serve target (against the fake of Ray's REST API) carries a rollout
through its router application; a target whose endpoints cannot be driven (export only) refuses one in one line."""

from __future__ import annotations

import pytest

from pipeline_utils.backends import get_deploy_target
from pipeline_utils.errors import BadInput
from pipeline_utils.rollout import plan_rollout, rollout_status, run_rollout
from tests.targets.test_ray_target import fake, iris_folder, router_apps, target_for  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow


def test_fake_ray_target_steps_the_router_split_and_records_each_step(fake, mlops_home, iris_folder):  # noqa: F811
    target = target_for(fake, mlops_home)
    for name in ("blue", "green"):
        target.create(name, iris_folder)
    target.create_endpoint("scoring", ["blue"])
    target.set_traffic("scoring", {"blue": 100})
    planned = plan_rollout("scoring", "green", "10,50,100", "0s", monitors=[], target=target)
    ended = run_rollout(planned.id, target)
    assert ended.state == "completed", ended.reason
    splits = [app["deployments"][0]["user_config"]["traffic"] for config in fake.puts()
              for name, app in router_apps(config).items() if name == "endpoint.scoring"]
    assert splits[-3:] == [{"blue": 90, "green": 10}, {"blue": 50, "green": 50}, {"blue": 0, "green": 100}]
    _, events = rollout_status(rollout_id=ended.id)
    assert [e.detail["traffic"] for e in events if e.kind == "traffic"] == [
        {"blue": 90, "green": 10}, {"blue": 50, "green": 50}, {"blue": 0, "green": 100}]


@pytest.mark.parametrize("backend", ["k8s", "azureml"])
def test_an_export_only_target_refuses_a_rollout_naming_the_variable(backend, monkeypatch) -> None:
    monkeypatch.setenv("MLOPS_DEPLOY_TARGET", backend)
    with pytest.raises(BadInput, match="has no endpoints") as caught:
        plan_rollout("shop", "green", "10,100", "1s", target=get_deploy_target())
    assert caught.value.field == "MLOPS_DEPLOY_TARGET"
