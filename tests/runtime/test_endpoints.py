"""Endpoints on the local runtime: the split's rules, deterministic routing, pins, mirrors, metrics, restarts."""

from __future__ import annotations

import time
from collections import Counter

import httpx
import pytest

from pipeline_utils.deploy.traffic import Endpoint, check_split
from pipeline_utils.errors import BadInput, Conflict, NotFound

STATUSES = {"blue": "ready", "green": "ready", "grey": "stopped"}


def _check(traffic, mirror=None):
    return check_split(traffic, mirror, STATUSES.__contains__, STATUSES.__getitem__)


@pytest.mark.parametrize(
    ("traffic", "mirror", "error", "field"),
    [
        ({"blue": 90, "green": 5}, None, BadInput, "traffic"),
        ({"blue": 90, "green": 20}, None, BadInput, "traffic"),
        ({}, None, BadInput, "traffic"),
        ({"blue": 90.0, "green": 10}, None, BadInput, "traffic.blue"),
        ({"blue": True, "green": 99}, None, BadInput, "traffic.blue"),
        ({"blue": 110, "green": -10}, None, BadInput, "traffic.blue"),
        ({"blue": "90", "green": 10}, None, BadInput, "traffic.blue"),
        ({"blue": 90, "Green!": 10}, None, BadInput, "traffic.Green!"),
        ({"blue": 90, "nothere": 10}, None, NotFound, "traffic.nothere"),
        ({"blue": 90, "grey": 10}, None, Conflict, "traffic.grey"),
        ([("blue", 100)], None, BadInput, "traffic"),
        ({"blue": 100}, {"green": 51}, BadInput, "mirror.green"),
        ({"blue": 90, "green": 10}, {"green": 10}, BadInput, "mirror.green"),
        ({"blue": 100, "grey": 0}, {"grey": 10}, Conflict, "mirror.grey"),
    ],
)
def test_every_rule_of_a_split_is_checked_and_names_its_field(traffic, mirror, error, field) -> None:
    with pytest.raises(error) as caught:
        _check(traffic, mirror)
    assert caught.value.field == field


def test_a_valid_split_keeps_zero_weights_and_drops_zero_mirrors() -> None:
    assert _check({"blue": 100, "grey": 0}, {"green": 0}) == ({"blue": 100, "grey": 0}, {})
    assert _check({"blue": 100}, {"green": 50}) == ({"blue": 100}, {"green": 50})
    with pytest.raises(BadInput, match="one deployment at most"):
        check_split({"blue": 100}, {"green": 10, "grey": 10}, STATUSES.__contains__, lambda name: "ready")


def test_the_router_lands_a_90_10_split_exactly_and_interleaved() -> None:
    endpoint = Endpoint("e", ["blue", "green"], {}, {}).with_split({"blue": 90, "green": 10}, {})
    served = [endpoint.choose(lambda name: True) for _ in range(300)]
    assert Counter(served) == {"blue": 270, "green": 30}
    assert all(Counter(served[start : start + 10])["green"] == 1 for start in range(0, 300, 10))
    three = Endpoint("e", [], {}, {}).with_split({"a": 50, "b": 30, "c": 20}, {})
    assert Counter(three.choose(lambda name: True) for _ in range(100)) == {"a": 50, "b": 30, "c": 20}


def test_the_router_skips_a_deployment_while_it_is_not_ready_and_mirrors_its_share() -> None:
    endpoint = Endpoint("e", [], {}, {}).with_split({"blue": 90, "green": 10}, {})
    assert {endpoint.choose(lambda name: name == "blue") for _ in range(50)} == {"blue"}
    assert endpoint.choose(lambda name: False) is None
    mirrored = Endpoint("e", [], {}, {}).with_split({"blue": 100}, {"green": 10})
    assert mirrored.deployments == ["blue", "green"] and mirrored.traffic == {"blue": 100, "green": 0}
    assert Counter(mirrored.mirror_target() for _ in range(300)) == {None: 270, "green": 30}


def test_a_pin_reaches_attached_deployments_only() -> None:
    endpoint = Endpoint("e", ["blue", "green"], {"blue": 100}, {})
    assert endpoint.pinned({"azureml-model-deployment": "green"}) == "green"
    assert endpoint.pinned({"x-mlops-deployment": "blue"}) == "blue"
    assert endpoint.pinned({}) is None
    with pytest.raises(NotFound) as caught:
        endpoint.pinned({"x-mlops-deployment": "grey"})
    assert caught.value.field == "x-mlops-deployment"


# -- on a running daemon ---------------------------------------------------------------------------


@pytest.fixture
def blue_green(runtime, echo_kernel):
    """Two started echo deployments, blue and green, and the runtime client."""
    from pipeline_utils.backends.local.runtime.client import default_client

    client = default_client()
    for name in ("blue", "green"):
        client.create(name, echo_kernel, profile={"logging": {"payload": True}})
        client.start(name)
    for name in ("blue", "green"):
        client.wait_ready(name)
    return client


def _served(response: httpx.Response) -> str:
    """The deployment that answered, from the header, checked against the kernel's own report."""
    assert response.status_code == 200, response.text
    name = response.headers["x-mlops-deployment"]
    assert response.headers["azureml-model-deployment"] == name
    assert response.json()["model_name"] == name
    return name


def test_an_endpoint_splits_pins_and_reports_which_deployment_served(blue_green) -> None:
    client = blue_green
    created = client.create_endpoint("shop", ["blue"])
    assert created["deployments"] == ["blue"] and created["traffic"] == {"blue": 0}
    url = client.endpoint_url("shop")
    assert created["url"] == url
    assert httpx.post(url, json={"i": 0}).status_code == 503  # no split yet
    client.stop("green")
    with pytest.raises(Conflict, match="only ready deployments get traffic"):
        client.set_traffic("shop", {"blue": 90, "green": 10})
    assert client.get_endpoint("shop")["traffic"] == {"blue": 0}  # nothing changed
    client.start("green")
    client.wait_ready("green")
    view = client.set_traffic("shop", {"blue": 90, "green": 10})
    assert view["traffic"] == {"blue": 90, "green": 10} and view["status"] == {"blue": "ready", "green": "ready"}
    with httpx.Client() as http:
        served = Counter(_served(http.post(url, json={"i": i})) for i in range(300))
        assert served == {"blue": 270, "green": 30}
        client.set_traffic("shop", {"blue": 100, "green": 0})
        for header in ("azureml-model-deployment", "x-mlops-deployment"):
            assert _served(http.post(url, json={}, headers={header: "green"})) == "green"
        refused = http.post(url, json={}, headers={"x-mlops-deployment": "nothere"})
        assert refused.status_code == 404 and "x-mlops-deployment" in refused.json()["error"]
        assert http.get(url).status_code == 405
        metrics = http.get(client.ensure_daemon() + "/metrics").text
    series = 'mlops_runtime_endpoint_requests_total{{endpoint="shop",deployment="{}",code="200",mirrored="false"}} {}'
    assert series.format("green", 32) in metrics and series.format("blue", 270) in metrics


def test_a_mirror_copies_its_share_and_the_live_answer_comes_from_the_live_deployment(blue_green) -> None:
    from pipeline_utils.monitor import payloadstore

    client = blue_green
    client.create_endpoint("shop", ["blue", "green"])
    client.set_traffic("shop", {"blue": 100}, mirror={"green": 20})
    url = client.endpoint_url("shop")
    with httpx.Client() as http:
        assert {_served(http.post(url, json={"i": i})) for i in range(50)} == {"blue"}
        deadline = time.monotonic() + 10
        pattern = 'mlops_runtime_endpoint_requests_total{endpoint="shop",deployment="green",code="200",mirrored="true"}'
        while f"{pattern} 10" not in http.get(client.ensure_daemon() + "/metrics").text:
            assert time.monotonic() < deadline, "the mirrored copies were not all answered"
            time.sleep(0.05)
    client.stop("blue")
    client.stop("green")  # flushes the payload log
    assert payloadstore.payload_count("blue") == 50 and payloadstore.payload_count("green") == 10


def test_the_split_survives_a_runtime_restart_and_guards_its_deployments(blue_green) -> None:
    client = blue_green
    client.create_endpoint("shop", ["blue", "green"])
    client.set_traffic("shop", {"blue": 50, "green": 50})
    with pytest.raises(Conflict, match="sends 'green' traffic"):
        client.delete("green")
    with pytest.raises(Conflict, match="set its weight to 0"):
        client.detach("shop", "green")
    assert client.shutdown_daemon()
    client.ensure_daemon()
    for name in ("blue", "green"):
        client.wait_ready(name)
    assert client.get_endpoint("shop")["traffic"] == {"blue": 50, "green": 50}
    with httpx.Client() as http:
        served = Counter(_served(http.post(client.endpoint_url("shop"), json={})) for _ in range(10))
    assert served == {"blue": 5, "green": 5}
    client.set_traffic("shop", {"blue": 100})
    client.delete("green")  # at 0 %: detached, then deleted
    assert client.get_endpoint("shop")["deployments"] == ["blue"]
    with pytest.raises(NotFound):
        client.attach("shop", "green")
    client.delete_endpoint("shop")
    assert client.list_endpoints() == []
    assert client.get("blue")["status"] == "ready"
