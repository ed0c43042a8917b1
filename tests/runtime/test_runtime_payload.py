"""Payload logging in the runtime: a profile switch, a writer process fed over a socket, custom-arg values masked."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from pipeline_utils.backends.local.runtime import client, payloadlog
from pipeline_utils.backends.local.runtime.metrics import Metrics
from pipeline_utils.backends.local.runtime.profile import apply_changes, default_profile, with_defaults
from pipeline_utils.errors import PipelineError
from pipeline_utils.monitor import payload, payloadstore
from pipeline_utils.monitor.context import run_context
from pipeline_utils.monitor.definitions import generic_metrics
from pipeline_utils.store import connect

SECRET = "pl-s3cr3t-9d41e7"


def _wait_count(name: str, expected: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    count = payloadstore.payload_count(name)
    while count < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        count = payloadstore.payload_count(name)
    return count


# -- in process ------------------------------------------------------------------------------------


def test_profile_setting_default_off_and_coerced() -> None:
    profile = default_profile()
    assert profile["logging"] == {"payload": False}
    assert apply_changes(profile, {"logging.payload": "true"})["logging"]["payload"] is True
    assert apply_changes(profile, {"payload": True})["logging"]["payload"] is True
    assert apply_changes(profile, {"logging": {"payload": "off"}})["logging"]["payload"] is False
    old = {k: v for k, v in default_profile().items() if k != "logging"}
    assert with_defaults(old)["logging"] == {"payload": False}
    with pytest.raises(PipelineError, match="unknown profile setting 'logging.nope'"):
        apply_changes(profile, {"logging.nope": 1})


def test_batch_api_masks_custom_arg_values_everywhere() -> None:
    written = payload.log_payloads(
        [
            {
                "deployment": "dep-b",
                "request": {"note": f"key={SECRET}", SECRET: 1, "n": 12345, "password": "x"},
                "response": f"raw {SECRET} text",
                "status": 200,
                "elapsed_ms": 1.5,
                "secrets": [SECRET, "12345", ""],
            },
            {"deployment": "dep-b", "request": {"i": 2}, "response": None},
        ]
    )
    assert written == 2 and payloadstore.payload_count("dep-b") == 2
    second, first = payloadstore.payload_records("dep-b")
    assert first["request"] == {"note": "key=***", "***": 1, "n": "***", "password": "***"}
    assert first["response"] == "raw *** text" and first["status"] == "200"
    assert second["request"] == {"i": 2}
    payload.log_payload("dep-b", {"x": "y"}, {"z": 1})  # the one-record API still works
    assert payloadstore.payload_count("dep-b") == 3


def test_decode_body_parses_lazily_and_caps() -> None:
    assert payload.decode_body(b'{"a": [1, 2]}') == {"a": [1, 2]}
    assert payload.decode_body(b"not json \xff") == "not json \ufffd"
    big = b'{"image": "' + b"A" * (payload.MAX_PARSE_BYTES + 10) + b'"}'
    decoded = payload.decode_body(big)
    assert decoded["_truncated"] is True and decoded["_bytes"] == len(big) and len(decoded["_sha256"]) == 64
    payload.log_payloads([{"deployment": "dep-n", "request": payload.decode_body(b"[NaN, 1]"), "response": None}])
    assert payloadstore.payload_records("dep-n")[0]["request"] == ["nan", 1]  # one odd body does not sink a batch


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_writer_queue_drops_oldest_when_full(monkeypatch: pytest.MonkeyPatch, mlops_home: Path) -> None:
    monkeypatch.setenv("MLOPS_RUNTIME_PAYLOAD_INTERVAL", "60")
    monkeypatch.setattr(payloadlog, "MAX_QUEUED", 5)
    log = payloadlog.PayloadLog(mlops_home)
    for i in range(8):
        log.put("dep-q", 200, 1.0, f'{{"i": {i}}}'.encode(), b'{"ok": true}', ())
    assert _until(lambda: log.stats("dep-q")["dropped"] == 3), log.stats("dep-q")  # dropped in the writer process
    assert log.queued("dep-q") == 5 and log.queued() == 5
    assert payloadstore.payload_count("dep-q") == 0  # nothing written before the interval or a flush
    assert log.flush(10)
    log.close()
    assert [r["request"]["i"] for r in payloadstore.payload_records("dep-q")] == [7, 6, 5, 4, 3]
    assert log.stats("dep-q") == {
        "written": 5, "dropped": 3, "failed": 0, "lost": 0, "queued": 0, "last_error": "", "earlier_writers": 0,
    }  # fmt: skip
    assert not list((mlops_home / "runtime" / "payload-log").iterdir()), "a closed log leaves no counts file"


def test_secrets_reach_the_writer_over_its_socket_only(monkeypatch: pytest.MonkeyPatch, mlops_home: Path) -> None:
    monkeypatch.setenv("MLOPS_RUNTIME_PAYLOAD_INTERVAL", "60")
    log = payloadlog.PayloadLog(mlops_home)
    log.put("dep-s", 200, 1.0, f'{{"key": "{SECRET}"}}'.encode(), f"echo {SECRET}".encode(), (SECRET,))
    assert log.flush(10)  # the writer runs its own code by now
    writer = log.session.proc.pid
    assert b"payloadwriter" in Path(f"/proc/{writer}/cmdline").read_bytes()
    for view in ("cmdline", "environ"):
        assert SECRET.encode() not in Path(f"/proc/{writer}/{view}").read_bytes(), f"custom-arg value in its {view}"
    log.close()
    [record] = payloadstore.payload_records("dep-s")
    assert record["request"] == {"key": "***"} and record["response"] == "echo ***"


def test_a_killed_writer_is_replaced_and_what_it_held_counted_lost(
    monkeypatch: pytest.MonkeyPatch, mlops_home: Path
) -> None:
    monkeypatch.setenv("MLOPS_RUNTIME_PAYLOAD_INTERVAL", "60")
    monkeypatch.setattr(payloadlog, "RESPAWN_PAUSE_SECONDS", 0.3)
    log = payloadlog.PayloadLog(mlops_home)

    def put(i: int) -> None:
        log.put("dep-k", 200, 1.0, f'{{"i": {i}}}'.encode(), b"{}", ())

    for i in range(5):
        put(i)
    first = log.session.proc
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    put(5)  # finds the writer gone: lost with the 5 it held
    put(6)  # no writer during the pause after a death: failed
    assert log.session is None
    time.sleep(0.4)
    put(7)
    assert log.session.proc.pid != first.pid
    assert log.flush(10)
    log.close()
    assert [r["request"]["i"] for r in payloadstore.payload_records("dep-k")] == [7]
    stats = log.stats("dep-k")
    assert (stats["written"], stats["lost"], stats["failed"], stats["queued"]) == (1, 6, 1, 0)
    assert f"writer pid {first.pid} exited" in stats["last_error"]
    assert 'mlops_runtime_payload_log_lost_total{deployment="dep-k"} 6' in _metrics_text(log)


def _metrics_text(log: payloadlog.PayloadLog) -> str:
    metrics = Metrics()
    metrics.payload_log = log
    return metrics.render(list)


# -- a real daemon ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_off_by_default_then_switched_on_live(runtime: str, echo_kernel: Path, tmp_path: Path) -> None:
    client.create("plog", echo_kernel)
    client.start("plog")
    view = client.wait_ready("plog")
    assert view["profile"]["logging"]["payload"] is False
    assert view["payload_log"]["enabled"] is False
    url = client.deployment_url("plog")
    for i in range(5):
        assert httpx.post(url, json={"i": i}).status_code == 200
    time.sleep(0.8)
    assert payloadstore.payload_count("plog") == 0

    profile = client.update_profile("plog", {"logging.payload": True})
    assert profile["logging"]["payload"] is True
    assert client.get("plog")["payload_log"]["enabled"] is True
    n = 30
    with httpx.Client() as http:
        for i in range(n):
            assert http.post(url, json={"i": i, "text": f"row {i}"}).status_code == 200
    assert _wait_count("plog", n) == n
    records = payloadstore.payload_records("plog", limit=n)
    assert sorted(r["request"]["i"] for r in records) == list(range(n))
    for record in records:
        assert record["status"] == "200" and record["elapsed_ms"] > 0
        assert record["response"]["echo"] == record["request"]
    stats = client.get("plog")["payload_log"]
    assert stats["written"] == n and stats["dropped"] == 0 and stats["queued"] == 0
    metrics = httpx.get(f"{runtime}/metrics").text
    assert f'mlops_runtime_payload_log_written_total{{deployment="plog"}} {n}' in metrics
    assert "mlops_runtime_payload_log_dropped_total" in metrics

    volume = tmp_path / "volume"
    (volume / "gt").mkdir(parents=True)
    (volume / "pred").mkdir()
    with run_context("plog", "generic_metrics"):
        values = generic_metrics({"dir_gt": "gt", "dir_pred": "pred", "most_recent": 1}, volume)
    assert values["num_payload_records"] == n and values["num_payload_records_recent"] == n

    client.update_profile("plog", {"logging.payload": False})
    assert httpx.post(url, json={"i": -1}).status_code == 200
    client.stop("plog")
    assert payloadstore.payload_count("plog") == n


@pytest.mark.slow
def test_custom_arg_values_never_stored(runtime: str, echo_kernel: Path, mlops_home: Path) -> None:
    client.create("plsec", echo_kernel, profile={"logging": {"payload": True}}, custom_args={"CPD_API_KEY": SECRET})
    client.start("plsec")
    assert client.wait_ready("plsec")["payload_log"]["enabled"] is True
    url = client.deployment_url("plsec")
    shown = httpx.post(url, json={"note": f"my key is {SECRET}", "show_args": ["CPD_API_KEY"]})
    assert shown.status_code == 200 and shown.json()["env"]["CPD_API_KEY"] == SECRET
    raw = httpx.post(url, content=f"not json {SECRET}".encode())
    assert raw.status_code == 500
    client.stop("plsec")
    assert payloadstore.payload_count("plsec") == 2
    text_record, json_record = payloadstore.payload_records("plsec")
    assert json_record["request"]["note"] == "my key is ***"
    assert json_record["response"]["env"] == {"CPD_API_KEY": "***"}
    assert json_record["response"]["globals"] == {"CPD_API_KEY": "***"}
    assert text_record["request"] == "not json ***" and text_record["status"] == "500"
    files = [p for p in mlops_home.rglob("*") if p.is_file()]
    assert any(p.name.startswith("mlops.db") for p in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), f"custom-arg value written to {path}"


@pytest.fixture
def slow_writer_runtime(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A daemon whose payload writer only writes on its own every 60 s (so flushes are what writes)."""
    monkeypatch.setenv("MLOPS_RUNTIME_PAYLOAD_INTERVAL", "60")
    return request.getfixturevalue("runtime")


@pytest.mark.slow
def test_records_flushed_on_stop_and_shutdown(slow_writer_runtime: str, echo_kernel: Path) -> None:
    client.create("plstop", echo_kernel, profile={"logging.payload": True})
    client.start("plstop")
    client.wait_ready("plstop")
    url = client.deployment_url("plstop")
    for i in range(7):
        assert httpx.post(url, json={"i": i}).status_code == 200
    time.sleep(0.3)
    assert payloadstore.payload_count("plstop") == 0
    assert client.get("plstop")["payload_log"]["queued"] == 7
    client.stop("plstop")
    assert payloadstore.payload_count("plstop") == 7

    client.start("plstop")
    client.wait_ready("plstop")
    for i in range(3):
        assert httpx.post(url, json={"i": i}).status_code == 200
    assert client.shutdown_daemon(timeout=20)
    assert payloadstore.payload_count("plstop") == 10


def test_frames_of_many_records_from_the_event_loop_are_stored_in_order_and_masked(
    monkeypatch: pytest.MonkeyPatch, mlops_home: Path
) -> None:
    """On the event loop, records gather for 50 ms into one frame per deployment (as in the daemon): two deployments
    interleaved, one with a custom arg that shows up in some bodies, odd bodies among plain ones, the custom arg
    changed halfway (the records before keep the old value's masking)."""
    import asyncio

    def body(i: int) -> bytes:
        if i % 97 == 5:
            return f"not json {i}".encode()
        if i % 89 == 7:
            return f'{{"i": {i}, "note": "{SECRET}"}}'.encode()
        return f'{{"i": {i}, "row": [0.5, {i}, -1e-3]}}'.encode()

    async def send() -> None:
        log = payloadlog.PayloadLog(mlops_home)
        for i in range(1200):
            secrets = (SECRET,) if i < 600 else (SECRET, "other-value-2")
            log.put("dep-a", 200, 0.5, body(i), b'{"ok": [1, 2]}', secrets)
            log.put("dep-b", 201, 0.25, f'[{i}]'.encode(), b"[]", ())
            if i % 100 == 99:
                await asyncio.sleep(0.06)  # a send happens: frames of about 100 records each
        assert await log.flush_async(30)
        assert log.stats("dep-a")["written"] == 1200 and log.stats("dep-b")["written"] == 1200
        log.close()

    asyncio.run(send())
    records = payloadstore.payload_records("dep-a", limit=2000)[::-1]
    assert len(records) == 1200
    for i, record in enumerate(records):
        if i % 97 == 5:
            assert record["request"] == f"not json {i}"
        elif i % 89 == 7:
            assert record["request"] == {"i": i, "note": "***"}
        else:
            assert record["request"] == {"i": i, "row": [0.5, i, -1e-3]}
        assert record["status"] == "200" and record["elapsed_ms"] == 0.5 and record["response"] == {"ok": [1, 2]}
    assert [r["request"] for r in payloadstore.payload_records("dep-b", limit=2000)[::-1]] == [[i] for i in range(1200)]
    conn = connect(mlops_home)
    rows = conn.execute("SELECT deployment, records FROM monitor_payload_batches").fetchall()
    conn.close()
    assert max(count for _, count in rows) >= 50, "records were framed together"
    for path in mlops_home.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
