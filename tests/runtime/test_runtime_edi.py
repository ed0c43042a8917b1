"""WMLA EDI kernels served end to end, custom args kept secret, the redhareapi shim."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from pipeline_utils.backends.local.runtime import client
from pipeline_utils.errors import PipelineError

pytestmark = pytest.mark.slow

SECRET = "s3cr3t-value-7f3a9c"


def test_edi_kernel_served_end_to_end(runtime: str, echo_kernel: Path) -> None:
    row = client.create("echo", echo_kernel)
    assert row["status"] == "stopped"
    assert row["url"] == f"{runtime}/dlim/v1/inference/echo"
    client.start("echo")
    view = client.wait_ready("echo")
    response = httpx.post(view["url"], json={"hello": "world"})
    assert response.status_code == 200
    answer = response.json()
    assert answer["echo"] == {"hello": "world"}
    assert answer["model_name"] == "echo"
    assert answer["pod"].startswith("echo-")
    assert Path(answer["model_path"]) == Path(view["folder"])
    assert (Path(answer["model_path"]) / "kernel.py").is_file()
    rows = {r["name"]: r for r in client.list_deployments()}
    assert rows["echo"]["requests_served"] == 1
    assert rows["echo"]["kernels_running"] == 1
    log = Path(view["logs"]) / f"{answer['pod']}.log"
    assert "echo kernel started" in log.read_text()


def test_custom_args_are_module_names_and_env_and_never_stored(
    runtime: str, echo_kernel: Path, mlops_home: Path
) -> None:
    client.create("secret", echo_kernel, custom_args={"CPD_API_KEY": SECRET, "VOLUME_DISPLAY_NAME": "vol1"})
    client.start("secret")
    client.wait_ready("secret")
    answer = client.invoke("secret", {"show_args": ["CPD_API_KEY", "VOLUME_DISPLAY_NAME"]}).json()
    assert answer["globals"] == {"CPD_API_KEY": SECRET, "VOLUME_DISPLAY_NAME": "vol1"}
    assert answer["env"] == {"CPD_API_KEY": SECRET, "VOLUME_DISPLAY_NAME": "vol1"}
    assert client.list_deployments()[0]["custom_arg_names"] == ["CPD_API_KEY", "VOLUME_DISPLAY_NAME"]
    client.stop("secret")
    for path in mlops_home.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), f"secret written to {path}"


def test_kernel_errors_are_clear_and_kernel_keeps_serving(runtime: str, echo_kernel: Path) -> None:
    client.create("errs", echo_kernel)
    client.start("errs")
    client.wait_ready("errs")
    url = client.deployment_url("errs")
    raised = httpx.post(url, json={"raise": True})
    assert raised.status_code == 500
    assert "ValueError: asked to raise" in raised.json()["error"]
    not_json = httpx.post(url, content=b"{not json")
    assert not_json.status_code == 500
    assert "JSONDecodeError" in not_json.json()["error"]
    assert httpx.post(url, json={"ok": 1}).status_code == 200
    assert httpx.get(url).status_code == 405
    missing = httpx.post(f"{runtime}/dlim/v1/inference/nope", json={})
    assert missing.status_code == 404 and "nope" in missing.json()["error"]


def test_kernel_start_failure_is_reported(runtime: str, echo_kernel: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client.create("broken", echo_kernel, custom_args={"ECHO_FAIL_START": "1"})
    client.start("broken")
    with pytest.raises(PipelineError, match="model file missing"):
        client.wait_ready("broken", timeout=30)
    response = client.invoke("broken", {})
    assert response.status_code == 503 and "model file missing" in response.json()["error"]


def test_create_rejects_bad_names_duplicates_and_folders(runtime: str, echo_kernel: Path, tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="lowercase"):
        client.create("Bad_Name", echo_kernel)
    client.create("dup", echo_kernel)
    with pytest.raises(PipelineError, match="already exists"):
        client.create("dup", echo_kernel)
    with pytest.raises(PipelineError, match="does not exist"):
        client.create("nofolder", tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PipelineError, match="no deployment kernel found"):
        client.create("empty", tmp_path / "empty")
    with pytest.raises(PipelineError, match="not a valid Python identifier"):
        client.create("badarg", echo_kernel, custom_args={"not-an-id": "x"})
    with pytest.raises(PipelineError, match="kernel_min"):
        client.create("badprofile", echo_kernel, profile={"kernel_min": 3, "kernel_max": 2})
    with pytest.raises(PipelineError, match="no deployment named"):
        client.start("ghost")


def test_task_context_batches_through_next(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from pipeline_utils.kernels.handlers import SHIMS

    monkeypatch.syspath_prepend(str(SHIMS))
    sys.modules.pop("redhareapi", None)
    import redhareapi

    tasks = [{"id": i, "input": json.dumps({"n": i}).encode(), "output": None} for i in range(3)]
    context = redhareapi.TaskContext(tasks)
    seen = []
    while context is not None:
        seen.append(json.loads(context.get_input_data())["n"])
        context.set_output_data(json.dumps({"n2": seen[-1] * 2}))
        context = context.next()
    assert seen == [0, 1, 2]
    assert [json.loads(t["output"]) for t in tasks] == [{"n2": 0}, {"n2": 2}, {"n2": 4}]
    mutating = redhareapi.TaskContext(tasks)
    count = 0
    while mutating:
        count += 1
        mutating.next()
    assert count == 3


def test_batched_tasks_reach_the_kernel_through_next(runtime: str, echo_kernel: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client.create("batch", echo_kernel, profile={"task_batch_size": 4, "kernel_max": 1})
    client.start("batch")
    client.wait_ready("batch")
    url = client.deployment_url("batch")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: httpx.post(url, json={"i": i, "sleep": 0.05}), range(8)))
    assert [a.json()["echo"]["i"] for a in answers] == list(range(8))
    assert len({a.json()["pod"] for a in answers}) == 1
