"""An endpoint's revision and compare-and-set on its split (issue 11, point 1: no lost update).

Every change of an endpoint's split or attachments moves its revision on by one; ``set_traffic`` with a stale
``expected_revision`` is a Conflict that changes nothing; ``deploy traffic --mirror`` alone sets the mirror on the
weights it read, compare-and-set, and reads again when another change landed in between. On the local runtime (a
real daemon, real CLI processes racing) and on the ray target (against the fake of Ray's REST API).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from pipeline_utils.deploy.traffic import Endpoint, check_revision
from pipeline_utils.errors import BadInput, Conflict
from tests.conftest import ROOT
from tests.targets.test_ray_target import fake, iris_folder, target_for  # noqa: F401 - fixtures used below

ROUNDS = 6
# A CLI process that loads the command's code, says so, and runs the command when told: both racers start together.
RACER = (
    "import sys\n"
    "from pipeline_utils.cli import deploy_cmds, main\n"
    "print('ready', flush=True)\n"
    "sys.stdin.readline()\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_the_revision_grows_with_each_change_and_stays_when_nothing_changes() -> None:
    created = Endpoint("shop", ["blue"], {}, {})
    assert created.revision == 1 and created.record()["revision"] == 1
    attached = created.with_deployments(["blue", "green"])
    split = attached.with_split({"blue": 100}, {"green": 10})
    assert (attached.revision, split.revision) == (2, 3)
    assert split.with_split({"blue": 100, "green": 0}, {"green": 10}).revision == 3, "the same split is no change"
    assert split.with_deployments(["blue", "green"]).revision == 3
    assert split.with_split({"blue": 100}, {}).revision == 4


@pytest.mark.parametrize(
    ("expected", "error", "field"),
    [(2, Conflict, "--endpoint"), (4, Conflict, "--endpoint"), (True, BadInput, "expected_revision"),
     ("3", BadInput, "expected_revision"), (-1, BadInput, "expected_revision"), (3.0, BadInput, "expected_revision")],
)
def test_an_expected_revision_other_than_the_current_one_is_refused_naming_its_field(expected, error, field) -> None:
    endpoint = Endpoint("shop", ["blue"], {"blue": 100}, {}, revision=3)
    check_revision(endpoint, 3)
    check_revision(endpoint, None)
    with pytest.raises(error) as caught:
        check_revision(endpoint, expected)
    assert caught.value.field == field
    assert error is not Conflict or "changed meanwhile" in str(caught.value)


def test_an_endpoint_stored_before_revisions_existed_loads_at_revision_one(mlops_home: Path) -> None:
    from pipeline_utils.backends.local.runtime import records

    db = sqlite3.connect(mlops_home / "mlops.db")
    db.execute("CREATE TABLE runtime_endpoints (name TEXT PRIMARY KEY, deployments TEXT NOT NULL,"
               " traffic TEXT NOT NULL, mirror TEXT NOT NULL, updated_at REAL NOT NULL)")
    db.execute("INSERT INTO runtime_endpoints VALUES ('shop', '[\"blue\"]', '{\"blue\": 100}', '{}', 0)")
    db.commit()
    db.close()
    assert records.all_endpoints() == [
        {"name": "shop", "deployments": ["blue"], "traffic": {"blue": 100}, "mirror": {}, "revision": 1}
    ]


# -- on a running daemon ---------------------------------------------------------------------------


def _started(names: tuple[str, ...], kernel: Path) -> Any:
    from pipeline_utils.backends.local.runtime.client import default_client

    client = default_client()
    for name in names:
        client.create(name, kernel)
        client.start(name)
    for name in names:
        client.wait_ready(name)
    return client


def test_a_stale_revision_changes_nothing_and_the_revision_survives_a_restart(runtime, echo_kernel) -> None:
    client = _started(("blue", "green"), echo_kernel)
    assert client.create_endpoint("shop", ["blue"])["revision"] == 1
    first = client.set_traffic("shop", {"blue": 100, "green": 0}, expected_revision=1)
    assert first["revision"] == 2 and first["deployments"] == ["blue", "green"]
    assert client.set_traffic("shop", {"blue": 100}, expected_revision=2)["revision"] == 2, "no change, no revision"
    second = client.set_traffic("shop", {"blue": 90, "green": 10})
    assert second["revision"] == 3 and client.get_endpoint("shop") == second

    with pytest.raises(Conflict, match="^--endpoint: endpoint 'shop' changed meanwhile"):
        client.set_traffic("shop", {"blue": 100}, mirror=None, expected_revision=2)
    with pytest.raises(BadInput, match="^expected_revision: "):
        client.set_traffic("shop", {"blue": 100}, expected_revision="3")
    assert client.get_endpoint("shop") == second, "refused changes change nothing"

    with ThreadPoolExecutor(4) as pool:  # four writers from the same revision: exactly one wins
        outcomes = list(pool.map(lambda w: _try_set(client, {"blue": w, "green": 100 - w}, 3), (20, 30, 40, 60)))
    won = [view for view in outcomes if view is not None]
    assert len(won) == 1 and won[0]["revision"] == 4 and client.get_endpoint("shop") == won[0]

    assert client.shutdown_daemon()
    client.ensure_daemon()
    assert client.get_endpoint("shop")["revision"] == 4
    for name in ("blue", "green"):
        client.wait_ready(name)
    with pytest.raises(Conflict, match="changed meanwhile"):
        client.set_traffic("shop", {"blue": 100}, expected_revision=3)
    assert client.set_traffic("shop", {"blue": 100}, expected_revision=4)["revision"] == 5


def _try_set(target: Any, traffic: dict[str, int], revision: int) -> dict[str, Any] | None:
    """The endpoint after a compare-and-set of ``traffic``, or None when a change came first."""
    try:
        return target.set_traffic("shop", traffic, expected_revision=revision)
    except Conflict:
        return None


def _race(*commands: tuple[str, ...]) -> list[dict[str, Any]]:
    """Run CLI commands as processes started together (each waits, loaded, for the same start line); their JSON."""
    racers = [
        subprocess.Popen([sys.executable, "-c", RACER, *command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=ROOT)
        for command in commands
    ]
    for racer in racers:
        assert racer.stdout.readline() == "ready\n", racer.stderr.read()
    for racer in racers:
        racer.stdin.write("go\n")
        racer.stdin.flush()
    views = []
    for racer in racers:
        out, err = racer.communicate(timeout=120)
        assert racer.returncode == 0, err
        views.append(json.loads(out))
    return views


def test_a_mirror_set_alone_while_another_process_sets_the_weights_never_reverts_them(runtime, echo_kernel) -> None:
    """Each round, one CLI process sets new weights and one sets only a new mirror, started together. Whatever the
    interleaving, the outcome is that of one order of the two changes (their revisions tell which): the new weights
    always stay; the mirror stays when it landed last (on the new weights), and is cleared when the --set landed
    last (as --set without --mirror does). Reading the old weights and writing them back is a lost update."""
    client = _started(("blue", "green", "grey"), echo_kernel)
    client.create_endpoint("shop", ["blue", "green", "grey"])
    before = client.set_traffic("shop", {"blue": 50, "green": 50})
    for round_ in range(ROUNDS):
        blue, percent = 55 + 5 * round_, 5 + round_
        weights = {"blue": blue, "green": 100 - blue, "grey": 0}
        set_view, mirror_view = _race(
            ("deploy", "traffic", "--endpoint", "shop", "--set", f"blue={blue}", "--set", f"green={100 - blue}",
             "--json"),
            ("deploy", "traffic", "--endpoint", "shop", "--mirror", f"grey={percent}", "--json"),
        )
        now = client.get_endpoint("shop")
        assert now["traffic"] == weights, f"round {round_}: the weights set with --set were reverted"
        assert now["revision"] == before["revision"] + 2, "two changes, one revision each"
        assert set_view["traffic"] == weights and set_view["mirror"] == {}
        assert {set_view["revision"], mirror_view["revision"]} == {now["revision"] - 1, now["revision"]}
        if mirror_view["revision"] > set_view["revision"]:
            assert mirror_view == now and now["mirror"] == {"grey": percent}, "the mirror went on the new weights"
        else:
            assert mirror_view["traffic"] == before["traffic"] and mirror_view["mirror"] == {"grey": percent}
            assert now["mirror"] == {}
        before = now


# -- the ray target, against the fake of Ray's REST API ------------------------------------------------------------


def test_fake_ray_endpoints_have_the_same_revisions_and_compare_and_set(fake, mlops_home, iris_folder) -> None:  # noqa: F811
    target = target_for(fake, mlops_home)
    target.create("blue", iris_folder)
    target.create("green", iris_folder)
    assert target.create_endpoint("shop", ["blue"])["revision"] == 1
    assert target.set_traffic("shop", {"blue": 100}, expected_revision=1)["revision"] == 2
    current = target.set_traffic("shop", {"blue": 90, "green": 10})
    assert current["revision"] == 3
    puts = len(fake.puts())
    with pytest.raises(Conflict, match="^--endpoint: endpoint 'shop' changed meanwhile"):
        target.set_traffic("shop", {"blue": 100}, {"green": 10}, expected_revision=2)
    assert len(fake.puts()) == puts and target.get_endpoint("shop") == current, "a stale revision changes nothing"

    others = [target_for(fake, mlops_home) for _ in range(3)]  # three more clients of the same home, at once
    with ThreadPoolExecutor(3) as pool:
        outcomes = list(pool.map(lambda pair: _try_set(pair[0], {"blue": pair[1], "green": 100 - pair[1]}, 3),
                                 zip(others, (20, 30, 40), strict=True)))
    won = [view for view in outcomes if view is not None]
    assert len(won) == 1 and won[0]["revision"] == 4

    restarted = target_for(fake, mlops_home)
    assert restarted.get_endpoint("shop") == won[0]
    assert restarted.set_traffic("shop", {"blue": 100}, expected_revision=4)["revision"] == 5
    router = next(app for app in fake.last_config()["applications"] if app["name"] == "endpoint.shop")
    assert "revision" not in router["deployments"][0]["user_config"], "the router's config is the split alone"
