"""A shop endpoint for rollouts: blue serving all of it, green attached at 0 % with a drift monitor on its payloads."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from pipeline_utils.backends import get_deploy_target
from pipeline_utils.monitor.api import configure_monitors
from pipeline_utils.space import get_space
from tests.runtime.conftest import ECHO_KERNEL

REFERENCE_CSV = "x,y\n" + "".join(f"{i},{9 - i}\n" for i in range(10)) * 10
DRIFT_LIMITS = {"psi_max": {"threshold": [0.2, "upper"]}}


def drift_monitor(reference: str, **overrides: object) -> dict:
    """A drift monitor of green's payloads against the staged reference (x and y spread over 0..9)."""
    return {"reference_asset": reference, "min_records": 5, "bins": 5, "most_recent": 1,
            "thresholds": DRIFT_LIMITS} | overrides


@pytest.fixture
def shop(runtime, tmp_path: Path):
    """Blue and green echo deployments logging payloads; endpoint ``shop`` at blue=100 with green attached at 0 %;
    green has a drift monitor ``drift_metrics`` (at least 5 records). Returns the deploy target."""
    from pipeline_utils.backends.local.runtime.client import default_client

    client = default_client()
    for name in ("blue", "green"):
        client.create(name, ECHO_KERNEL, profile={"logging": {"payload": True}})
        client.start(name)
    for name in ("blue", "green"):
        client.wait_ready(name)
    reference = tmp_path / "reference.csv"
    reference.write_text(REFERENCE_CSV)
    get_space().add_asset(reference, "reference.csv", "data")
    configure_monitors("green", {"openscale_custom_metric_provider": {"drift_metrics": drift_monitor("reference.csv")}},
                       first_run=False)
    target = get_deploy_target()
    target.create_endpoint("shop", ["blue", "green"])
    target.set_traffic("shop", {"blue": 100})
    return target


@contextlib.contextmanager
def traffic(target, row: Callable[[int], list[float]], endpoint: str = "shop") -> Iterator[list[int]]:
    """Requests sent to the endpoint in the background until the block ends (rows made by ``row(i)``); yields the
    statuses seen so far."""
    statuses: list[int] = []
    done = threading.Event()
    url = target.endpoint_url(endpoint)

    def send() -> None:
        i = 0
        with httpx.Client(timeout=10) as http:
            while not done.is_set():
                try:
                    statuses.append(http.post(url, json={"instances": [row(i)]}).status_code)
                except httpx.HTTPError:  # the runtime restarting under the sender: counted as a failed request
                    statuses.append(-1)
                    time.sleep(0.05)
                i += 1

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        yield statuses
    finally:
        done.set()
        sender.join(timeout=15)


def in_distribution(i: int) -> list[float]:
    """Rows spread over the reference's range as it has them, for whichever deployment the router sends request
    ``i`` to (it interleaves deterministically, so the value changes every ten requests, not with each)."""
    value = (i // 10) % 10
    return [value, 9 - value]


def shifted(i: int) -> list[float]:
    """Rows far above the reference's range in x: a drifted input."""
    value = (i // 10) % 10
    return [50 + value, 9 - value]
