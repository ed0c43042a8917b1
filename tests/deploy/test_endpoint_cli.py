"""Endpoints and the traffic split for users: the ``endpoint`` and ``deploy traffic`` commands as real processes
against a real runtime daemon, the deploy-target methods behind them, and the canary steps of the notebooks."""

from __future__ import annotations

import json
import re

import pytest

from pipeline_utils.backends import get_deploy_target
from pipeline_utils.cli.endpoint_cmds import parse_percents
from pipeline_utils.deploy.base import DeploymentTarget
from pipeline_utils.errors import BadInput, PipelineError
from tests.conftest import run_cli as cli
from tests.runtime.conftest import ECHO_KERNEL


@pytest.fixture
def blue_green(runtime):
    """Two started echo deployments, blue and green, on the local deploy target."""
    target = get_deploy_target()
    for name in ("blue", "green"):
        target.create(name, ECHO_KERNEL)
        target.start(name)
    for name in ("blue", "green"):
        target.wait_ready(name)
    return target


def split(endpoint: str = "shop") -> dict:
    """The endpoint as ``deploy traffic --json`` shows it."""
    shown = cli("deploy", "traffic", "--endpoint", endpoint, "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def refused(result, code: int, *fragments: str) -> None:
    """A refusal: the exit code of its error type, one line on stderr naming what was wrong."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code and len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.slow
def test_a_user_creates_an_endpoint_splits_mirrors_pins_and_deletes_it(blue_green) -> None:
    target = blue_green
    created = cli("endpoint", "create", "--name", "shop", "--deployment", "blue")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == target.endpoint_url("shop")
    assert cli("endpoint", "attach", "--name", "shop", "--deployment", "green").returncode == 0

    shifted = cli("deploy", "traffic", "--endpoint", "shop", "--set", "blue=90", "--set", "green=10")
    assert shifted.returncode == 0, shifted.stderr
    assert "traffic blue=90 green=10, mirror -" in shifted.stderr
    table = cli("deploy", "traffic", "--endpoint", "shop")
    assert table.returncode == 0, table.stderr
    cells = [re.split("[│┃]", line)[1:-1] for line in table.stdout.splitlines() if line.startswith(("│", "┃"))]
    assert [[cell.strip() for cell in row] for row in cells] == [
        ["deployment", "weight", "mirror", "status"], ["blue", "90", "", "ready"], ["green", "10", "", "ready"]
    ]

    refused(cli("deploy", "traffic", "--endpoint", "shop", "--set", "blue=x"), 2, "--set", "blue=x")
    refused(cli("deploy", "traffic", "--endpoint", "shop", "--set", "blue=90", "--set", "green=5"), 2,
            "sum to exactly 100")
    refused(cli("deploy", "traffic", "--endpoint", "shop", "--set", "blue=100", "--mirror", "green=60"), 2,
            "mirror.green")
    assert split()["traffic"] == {"blue": 90, "green": 10}, "refused splits change nothing"

    mirrored = cli("deploy", "traffic", "--endpoint", "shop", "--set", "blue=100", "--mirror", "green=10", "--json")
    assert mirrored.returncode == 0, mirrored.stderr
    view = json.loads(mirrored.stdout)
    assert view["traffic"] == {"blue": 100, "green": 0} and view["mirror"] == {"green": 10}
    assert cli("deploy", "traffic", "--endpoint", "shop", "--no-mirror").returncode == 0
    assert split()["traffic"] == {"blue": 100, "green": 0} and split()["mirror"] == {}
    assert cli("deploy", "traffic", "--endpoint", "shop", "--mirror", "green=20").returncode == 0
    assert split()["traffic"] == {"blue": 100, "green": 0} and split()["mirror"] == {"green": 20}
    assert cli("deploy", "traffic", "--endpoint", "shop", "--set", "blue=100").returncode == 0
    assert split()["mirror"] == {}, "--set without --mirror clears the mirror"
    refused(cli("deploy", "traffic", "--endpoint", "shop", "--mirror", "green=5", "--no-mirror"), 2, "--no-mirror")

    assert target.predict_endpoint("shop", {"i": 1}, "green")[:2] == (200, "green")
    status, served_by, answer = target.predict_endpoint("shop", {"i": 2})
    assert (status, served_by, answer["model_name"], answer["echo"]) == (200, "blue", "blue", {"i": 2})
    assert target.predict_endpoint("shop", {}, "nothere")[:2] == (404, None)

    refused(cli("endpoint", "detach", "--name", "shop", "--deployment", "blue"), 4, "set its weight to 0")
    assert cli("endpoint", "detach", "--name", "shop", "--deployment", "green").returncode == 0
    listed = json.loads(cli("endpoint", "list", "--json").stdout)
    url = target.endpoint_url("shop")
    assert [(e["name"], e["deployments"], e["url"]) for e in listed] == [("shop", ["blue"], url)]
    assert json.loads(cli("endpoint", "view", "--name", "shop", "--json").stdout)["status"] == {"blue": "ready"}
    for command in (("endpoint", "view", "--name", "shop"), ("endpoint", "list")):
        shown = cli(*command)
        assert shown.returncode == 0 and "blue=100" in shown.stdout and url in shown.stdout, shown.stdout
    assert "blue=ready" in cli("endpoint", "view", "--name", "shop").stdout

    assert cli("endpoint", "delete", "--name", "shop").returncode == 0
    assert json.loads(cli("endpoint", "list", "--json").stdout) == []
    refused(cli("endpoint", "view", "--name", "shop"), 3, "no endpoint named 'shop'")
    refused(cli("deploy", "traffic", "--endpoint", "shop"), 3, "no endpoint named 'shop'")
    assert target.get("blue")["status"] == "ready", "deleting an endpoint leaves its deployments serving"


@pytest.mark.slow
def test_mirror_or_no_mirror_alone_needs_a_split_to_keep(blue_green) -> None:
    assert cli("endpoint", "create", "--name", "shop", "--deployment", "blue", "--deployment", "green").returncode == 0
    refused(cli("deploy", "traffic", "--endpoint", "shop", "--mirror", "green=10"), 2, "--mirror", "--set")
    refused(cli("deploy", "traffic", "--endpoint", "shop", "--no-mirror"), 2, "--no-mirror", "--set")
    refused(cli("endpoint", "create", "--name", "shop"), 4, "already exists")
    refused(cli("endpoint", "create", "--name", "other", "--deployment", "nothere"), 3, "nothere")
    refused(cli("endpoint", "attach", "--name", "shop", "--deployment", "nothere"), 3, "nothere")


@pytest.mark.slow
def test_a_canary_release_with_the_notebook_steps(blue_green) -> None:
    from pipeline_utils.deploy.steps import canary_check, shift_traffic

    target = blue_green
    target.create_endpoint("shop", ["blue"])
    assert shift_traffic("shop", {"blue": 100})["traffic"] == {"blue": 100}
    target.attach("shop", "green")
    checked = canary_check("shop", "green", {"canary": True})
    assert checked["status"] == 200 and checked["served_by"] == "green"
    assert checked["answer"]["echo"] == {"canary": True} and checked["answer"]["model_name"] == "green"
    assert shift_traffic("shop", {"blue": 90, "green": 10})["traffic"] == {"blue": 90, "green": 10}
    served = [target.predict_endpoint("shop", {"i": i})[1] for i in range(10)]
    assert sorted(served) == ["blue"] * 9 + ["green"]
    assert shift_traffic("shop", {"blue": 0, "green": 100}, {"blue": 10})["mirror"] == {"blue": 10}
    with pytest.raises(PipelineError, match="answered HTTP 404"):
        canary_check("shop", "nothere", {})
    target.stop("blue")
    with pytest.raises(PipelineError, match="canary request to blue on endpoint shop answered HTTP 503"):
        canary_check("shop", "blue", {})
    with pytest.raises(BadInput, match="sum to exactly 100"):
        shift_traffic("shop", {"green": 50})
    assert target.get_endpoint("shop")["traffic"] == {"blue": 0, "green": 100}


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (("blue",), "expected DEPLOYMENT=PERCENT"),
        (("=90",), "expected DEPLOYMENT=PERCENT"),
        (("blue=x",), "'blue=x': the percent must be an integer"),
        (("blue=9.5",), "must be an integer"),
        (("blue=1_0",), "must be an integer"),
        (("blue=-1",), "must be an integer"),
        (("blue=101",), "from 0 to 100"),
        (("blue=\u00b2",), "must be an integer"),
        (("blue=50", "blue=50"), "given twice"),
    ],
)
def test_a_bad_percent_is_refused_naming_the_option_and_the_pair(pairs, message) -> None:
    with pytest.raises(BadInput, match=message) as caught:
        parse_percents(pairs, "--set")
    assert caught.value.field == "--set"


def test_percents_parse_to_integers_in_order() -> None:
    assert parse_percents((" blue = 90", "green=010", "grey=0"), "--set") == {"blue": 90, "green": 10, "grey": 0}


def test_a_target_without_endpoints_says_so_naming_the_variable_that_chooses_it() -> None:
    bare = type(
        "Bare", (DeploymentTarget,), {"name": "bare", **dict.fromkeys(DeploymentTarget.__abstractmethods__, None)}
    )()
    calls = [
        lambda: bare.create_endpoint("shop", ["blue"]),
        bare.list_endpoints,
        lambda: bare.get_endpoint("shop"),
        lambda: bare.delete_endpoint("shop"),
        lambda: bare.set_traffic("shop", {"blue": 100}),
        lambda: bare.attach("shop", "blue"),
        lambda: bare.detach("shop", "blue"),
        lambda: bare.endpoint_url("shop"),
        lambda: bare.predict_endpoint("shop", {}),
    ]
    for call in calls:
        with pytest.raises(BadInput, match="the 'bare' deploy target has no endpoints") as caught:
            call()
        assert caught.value.field == "MLOPS_DEPLOY_TARGET"
