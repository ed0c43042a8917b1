"""Payload logging on the ray target: replicas keep what their kernels ran (stored as the payload log stores it,
custom-arg values masked) in the deployment's payload buffer; the target copies it into the local payload log with
a token, page by page, once; the monitors read it there.

In Serve's in-process testing mode (the replica, its routes and the buffer) and against the fake of Ray's REST API
(the profile switch, the config holding the token's SHA-256 only). The real-cluster test is in test_ray_target.py
(it shares that module's cluster).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline_utils.errors import BadInput
from tests.targets.test_ray_target import (  # noqa: F401 - fake and iris_folder are fixtures
    SECRET,
    fake,
    iris_folder,
    kernel_args,
    serve_request,
    target_for,
)

TOKEN = "payload-token-for-the-test-0c1d"
ECHO_SCRIPT = """
def init():
    global key
    key = API_KEY

def run(raw_data):
    if "fail" in raw_data:
        raise ValueError("asked to fail")
    return {"echo": raw_data, "key_tail": key[-4:]}
"""


@pytest.fixture
def logging_replica(tmp_path: Path):
    """A scoring-script deployment with payload logging on, in Serve's in-process testing mode, its custom arg
    handed over; a call returns (status, parsed body)."""
    serve = pytest.importorskip("ray.serve", reason="the ray extra (requirements-ray.txt) is not installed")
    from pipeline_utils.backends.ray.app import build

    folder = tmp_path / "echo"
    folder.mkdir()
    (folder / "score.py").write_text(ECHO_SCRIPT)
    args = kernel_args("echo", "scoring", folder, "score.py", custom_arg_names=["API_KEY"],
                       custom_args_holder=f"mlops-custom-args-echo-{time.time_ns()}", payload_log=True,
                       payload_buffer=f"mlops-payloads-echo-{time.time_ns()}",
                       payload_token_sha256=hashlib.sha256(TOKEN.encode()).hexdigest())
    handle = serve.run(build(args), name="echo", route_prefix="/dlim/v1/inference/echo", _local_testing_mode=True)

    def call(method: str, suffix: str = "", payload: Any = None, headers: dict[str, str] | None = None,
             query: str = "") -> tuple[int, Any]:
        body = b"" if payload is None else json.dumps(payload).encode()
        request = serve_request(method, f"/dlim/v1/inference/echo{suffix}", body, headers, query)
        answer = handle.remote(request).result(timeout_s=60)
        return answer.status_code, json.loads(answer.body)

    assert call("PUT", "/-/custom-args", {"API_KEY": SECRET})[0] == 200
    return call


def page(call, after: int = 0, epoch: str = "", limit: int | None = None) -> dict[str, Any]:
    query = f"after={after}&epoch={epoch}" + (f"&limit={limit}" if limit else "")
    status, answer = call("GET", "/-/payloads", headers={"x-mlops-payload-token": TOKEN}, query=query)
    assert status == 200, answer
    return answer


def until_logged(call, count: int, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = page(call)
        if answer["last"] >= count or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def test_local_mode_replicas_log_what_their_kernel_ran_masked_and_the_buffer_pages_it_with_a_token(logging_replica):
    call = logging_replica
    bodies = [{"i": i} for i in range(5)] + [f"my key is {SECRET}", "fail"]
    answers = [call("POST", "", body) for body in bodies]
    assert [status for status, _ in answers] == [200] * 6 + [500]
    assert call("GET", "/-/payloads")[0] == 403, "no token, no payloads"
    assert call("GET", "/-/payloads", headers={"x-mlops-payload-token": "wrong"})[0] == 403
    answer = until_logged(call, 7)
    assert answer["last"] == 7 and answer["dropped"] == 0
    records = answer["records"]
    assert [record[0] for record in records] == list(range(1, 8)), "numbered in order"
    assert [json.loads(record[4]) for record in records] == [*bodies[:5], "my key is ***", "fail"]
    assert [record[2] for record in records] == [200] * 6 + [500]
    assert all(record[3] > 0 and record[1] > 1.7e9 for record in records)
    assert json.loads(records[0][5]) == {"echo": "{\"i\": 0}", "key_tail": SECRET[-4:]}
    assert SECRET not in json.dumps(answer), "the custom-arg value is masked before it leaves the replica"

    later = page(call, after=5, epoch=answer["epoch"])
    assert [record[0] for record in later["records"]] == [6, 7]
    assert [record[0] for record in page(call, after=5, epoch="an-older-buffer")["records"]] == list(range(1, 8))
    assert [record[0] for record in page(call, after=2, epoch=answer["epoch"], limit=2)["records"]] == [3, 4]
    assert call("GET", "/-/payloads", headers={"x-mlops-payload-token": TOKEN}, query="after=x")[0] == 400

    assert call("DELETE", "/-/payloads", headers={"x-mlops-payload-token": TOKEN})[0] == 200
    assert page(call)["records"] == [], "the buffer is gone"


def test_fake_logging_payload_is_a_profile_switch_and_the_config_holds_only_the_tokens_hash(
    fake, mlops_home, iris_folder  # noqa: F811
):
    target = target_for(fake, mlops_home)
    target.create("iris", iris_folder)
    assert target.get_profile("iris")["logging"] == {"payload": False}
    record_file = mlops_home / "deployments" / "ray" / "iris.json"
    token = json.loads(record_file.read_text())["payload_token"]
    assert record_file.stat().st_mode & 0o077 == 0, "the record holding the token is the owner's only"

    assert target.update_profile("iris", {"logging.payload": "on"})["logging"] == {"payload": True}
    args = fake.puts()[-1]["applications"][0]["args"]
    assert args["payload_log"] is True
    assert args["payload_token_sha256"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in json.dumps(fake.puts()), "never the token itself"
    assert target.get("iris")["payload_log"]["enabled"] is True

    puts = len(fake.puts())
    with pytest.raises(BadInput) as raised:
        target.update_profile("iris", {"logging": {"payload": "maybe"}})
    assert raised.value.field == "logging.payload" and "\n" not in str(raised.value)
    assert len(fake.puts()) == puts, "a bad value sends nothing"
    assert target.update_profile("iris", {"payload": False})["logging"] == {"payload": False}


def test_the_monitors_bring_a_ray_deployments_payload_log_up_to_date_before_they_evaluate(monkeypatch):
    """run_monitors (``monitor run``, a rollout's checks) asks the configured deploy target to copy first; one that
    cannot be reached is a one-line warning, and the monitors go on with what the log has."""
    from pipeline_utils.backends.ray.target import RayServeTarget
    from pipeline_utils.errors import PipelineError, Unavailable
    from pipeline_utils.monitor import api

    asked: list[str] = []

    def sync(self, name: str) -> int:
        asked.append(name)
        if name == "unreachable":
            raise Unavailable("Ray Serve's proxy at http://127.0.0.1:9 cannot be reached (ConnectError)")
        return 3

    monkeypatch.setattr(RayServeTarget, "sync_payload_log", sync)
    monkeypatch.setenv("MLOPS_DEPLOY_TARGET", "ray")
    assert api.sync_payload_log("green") == 3
    with pytest.raises(PipelineError):  # no monitors configured: the run itself refuses, after the copy
        api.run_monitors("green")
    assert asked == ["green", "green"]
    assert api.sync_payload_log("unreachable") == 0
    monkeypatch.setenv("MLOPS_DEPLOY_TARGET", "local")
    assert api.sync_payload_log("green") == 0 and asked == ["green", "green", "unreachable"], "local: nothing to copy"
